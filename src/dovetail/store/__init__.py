"""State store: checkpoints, durable inbox, dead letters, idempotency keys, journal."""
