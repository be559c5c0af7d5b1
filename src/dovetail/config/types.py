"""Value types used in config models: durations (``500ms``) and rates (``20/s``)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(ms|s|m|h|d)?\s*$")


def parse_duration(value: Any) -> float:
    """``"500ms"``, ``"60s"``, ``"2m"``, ``"1h"`` or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 500ms, 30s or 5m")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    raise ValueError(f"expected a duration like 500ms, 30s or 5m, found {value!r}")


def parse_rate(value: Any) -> float:
    """``"20/s"``, ``"600/m"`` or a number per second -> messages per second."""
    if isinstance(value, bool):
        raise ValueError("expected a rate like 20/s or 600/m")
    if isinstance(value, int | float) and value > 0:
        return float(value)
    if isinstance(value, str):
        match = _RATE.match(value)
        if match and float(match.group(1)) > 0:
            return float(match.group(1)) / _UNIT_SECONDS[match.group(2) or "s"]
    raise ValueError(f"expected a rate like 20/s or 600/m, found {value!r}")


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\d+(\.\d+)?(ms|s|m|h|d)?$"},
                {"type": "number", "minimum": 0},
            ],
            "description": "A duration: 500ms, 30s, 5m, 1h, or a number of seconds.",
        }
    ),
]

Rate = Annotated[
    float,
    BeforeValidator(parse_rate),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\d+(\.\d+)?/(ms|s|m|h|d)$"},
                {"type": "number", "exclusiveMinimum": 0},
            ],
            "description": "A rate: 20/s, 600/m, or a number per second.",
        }
    ),
]
