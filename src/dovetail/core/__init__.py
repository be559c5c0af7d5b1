"""The runtime core: envelopes, acks, component protocols and the runner. No I/O libraries."""
