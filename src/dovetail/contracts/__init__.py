"""Contracts with partner APIs: checking a sink's output against an OpenAPI operation or a
JSON Schema (``validate``), and finding breaking changes between two versions of a partner's
OpenAPI document (``diff``)."""
