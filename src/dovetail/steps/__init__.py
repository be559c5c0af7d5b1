"""Built-in steps, one module per YAML key."""
