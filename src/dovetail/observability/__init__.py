"""Logs, masking, redaction, metrics and tracing."""
