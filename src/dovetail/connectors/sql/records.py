"""Rows read by the ``sql`` source as JSON-safe payloads, the same way on every database.

Each column value becomes JSON data: numbers, text, booleans and nulls stay as they are;
decimals become text with every digit kept (``"19.90"``; ``decimals: number`` makes them
floats); timestamps, dates and times become ISO 8601 text (``2024-03-01T08:00:00+00:00`` for a
timestamp with time zone, without an offset for one without); UUIDs text; binary values
base64 text; intervals seconds; arrays lists; JSON columns (PostgreSQL ``json``/``jsonb``,
MySQL ``JSON``) the parsed value. These are the forms the ``sql`` sink takes back.

SQLite keeps dates as text and decimals as floats (as the ``sql`` sink writes them): they come
back as that text and those floats.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from datetime import date, time, timedelta
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

import orjson

DecimalStyle = Literal["string", "number"]
_PLAIN = frozenset({str, int, float, bool, type(None)})


def json_value(value: Any, decimals: DecimalStyle = "string") -> Any:
    """``value`` as JSON data (see the module docstring)."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if isinstance(value, Decimal):
        if decimals == "number":
            return float(value)
        return format(value, "f") if value.is_finite() else str(value)
    if isinstance(value, date | time):  # datetime is a date
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, list | tuple):
        return [json_value(item, decimals) for item in value]
    if isinstance(value, dict):
        return {str(name): json_value(item, decimals) for name, item in value.items()}
    return str(value)


def payload_builder(
    columns: Sequence[str], json_columns: frozenset[int], decimals: DecimalStyle
) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """Turns one result row (values in ``columns`` order) into its payload dict.

    ``json_columns`` are the positions of columns the driver returns as JSON text.
    """
    names = list(columns)

    def build(row: Sequence[Any]) -> dict[str, Any]:
        payload: dict[str, Any] = {}
        for index, (name, value) in enumerate(zip(names, row, strict=True)):
            if type(value) in _PLAIN:
                if index in json_columns and isinstance(value, str):
                    value = _parse_json(value)
                payload[name] = value
            else:
                payload[name] = json_value(value, decimals)
        return payload

    return build


def _parse_json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
