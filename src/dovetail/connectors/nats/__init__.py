"""NATS JetStream connectors: the ``nats`` source (durable pull consumer) and sink (publish)."""
