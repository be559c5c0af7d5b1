"""``api`` source: a request/response endpoint validated against an OpenAPI 3 operation."""
