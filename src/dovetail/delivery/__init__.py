"""The delivery layer around every sink: idempotency, rate limits, retries, dead letters."""
