"""Flow configuration: models, YAML loading with positions, interpolation, lint, schema."""
