"""AMQP content types of the body formats, and AMQP header tables to envelope headers.

Bodies are read and written by ``dovetail.connectors.payload_codec``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from dovetail.types import Headers

CONTENT_TYPES: dict[str, str] = {
    "json": "application/json",
    "text": "text/plain; charset=utf-8",
    "bytes-base64": "application/octet-stream",
}


def header_text(value: Any) -> str | None:
    """An AMQP header value as text (tables and arrays as JSON); ``None`` for a void value."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, int | float | Decimal):
        return str(value)
    return orjson.dumps(value, default=str).decode()


def headers_from_amqp(table: Mapping[str, Any] | None) -> Headers:
    """AMQP headers as envelope headers: lower-case names, text values."""
    headers: Headers = {}
    for name, value in (table or {}).items():
        text = header_text(value)
        if text is not None:
            headers[str(name).lower()] = text
    return headers
