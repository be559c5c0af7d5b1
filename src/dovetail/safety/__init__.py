"""Safety limits for untrusted input: path confinement, payload sizes, nesting depth."""
