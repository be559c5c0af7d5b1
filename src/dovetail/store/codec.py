"""Encodings of stored values shared by the SQLite and PostgreSQL stores."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from dovetail.store.base import DeadLetter


def timestamp(value: float | None) -> datetime | None:
    """A stored epoch time as an aware UTC datetime (``None`` stays ``None``)."""
    return None if value is None else datetime.fromtimestamp(value, UTC)


def epoch(value: datetime | None) -> float | None:
    """An aware datetime as stored epoch seconds (``None`` stays ``None``)."""
    return None if value is None else value.timestamp()


def history_entry(letter: DeadLetter, now: float) -> dict[str, Any]:
    """One failure of a dead letter as kept in its ``history``."""
    return {
        "at": now,
        "step": letter.step,
        "reason": letter.reason,
        "error_class": letter.error_class,
        "attempt": letter.attempt,
        "flow_version": letter.flow_version,
    }


def encode_payload(payload: Any) -> bytes:
    """Serialise a payload for storage: JSON for data, a marker for raw bytes/text."""
    if isinstance(payload, bytes):
        return b"b:" + payload
    return b"j:" + orjson.dumps(payload, default=str)


def decode_payload(blob: bytes) -> Any:
    """Inverse of ``encode_payload``."""
    if blob.startswith(b"b:"):
        return blob[2:]
    if blob.startswith(b"j:"):
        return orjson.loads(blob[2:])
    return orjson.loads(blob)
