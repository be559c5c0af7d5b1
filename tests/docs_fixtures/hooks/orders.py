"""``python: hooks.orders:enrich`` from docs/flow-file.md."""

from __future__ import annotations

from typing import Any


def enrich(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload, unchanged."""
    return payload


def explode_bundles(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """One message per bundle line (``python: {function: hooks.orders:explode_bundles}``)."""
    lines = payload.get("lines")
    return [dict(line) for line in lines] if isinstance(lines, list) else [payload]
