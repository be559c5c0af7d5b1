"""SQL of the parked-retry table (``dovetail_parked``), shared by the SQLite and PostgreSQL stores.

Statements use ``?`` placeholders; the PostgreSQL store numbers them for its driver. Rows are
encoded the same way by both backends (payloads as in dead letters, times as epoch seconds).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from dovetail.store.base import ParkedMessage
from dovetail.store.codec import (
    decode_json,
    decode_payload,
    encode_json_text,
    encode_payload,
    timestamp,
)

FIELDS = (
    "id",
    "flow",
    "flow_version",
    "sink",
    "message_id",
    "correlation_id",
    "ordering_key",
    "idempotency_key",
    "attempt",
    "payload",
    "original",
    "headers",
    "source_position",
    "reason",
    "error_class",
    "detail",
    "dead_letter_id",
    "next_attempt_at",
    "first_failed_at",
    "last_failed_at",
    "history",
)
COLUMNS = ", ".join(FIELDS)

INSERT = (
    f"INSERT INTO dovetail_parked ({', '.join(FIELDS[1:])})"
    f" VALUES ({', '.join('?' * (len(FIELDS) - 1))})"
)
UPDATE = (
    "UPDATE dovetail_parked SET flow_version = ?, attempt = ?, payload = ?, headers = ?,"
    " reason = ?, error_class = ?, detail = ?, next_attempt_at = ?, last_failed_at = ?,"
    " history = ? WHERE id = ?"
)
DELETE = "DELETE FROM dovetail_parked WHERE id"
LEASE = "UPDATE dovetail_parked SET next_attempt_at = ? WHERE id"

_FIRST_IN_LINE = (
    "NOT EXISTS (SELECT 1 FROM dovetail_parked q WHERE q.flow = p.flow AND q.sink = p.sink"
    " AND q.id < p.id AND ((p.ordering_key IS NOT NULL AND q.ordering_key = p.ordering_key)"
    " OR (p.idempotency_key IS NOT NULL AND q.idempotency_key = p.idempotency_key)))"
)
DUE = (
    f"SELECT {', '.join('p.' + name for name in FIELDS)} FROM dovetail_parked p"
    f" WHERE p.flow = ? AND p.next_attempt_at <= ? AND {_FIRST_IN_LINE}"
    " ORDER BY p.id LIMIT ?"
)
"""Due messages that no older parked message of the same sink and key waits before."""


def history_entry(message: ParkedMessage, now: float) -> dict[str, Any]:
    """One failed attempt of a parked message, as kept in its ``history``."""
    return {
        "at": now,
        "step": f"sink:{message.sink}",
        "reason": message.reason,
        "error_class": message.error_class,
        "attempt": message.attempt,
        "flow_version": message.flow_version,
        "next_attempt_at": message.next_attempt_at.timestamp(),
    }


def insert_row(message: ParkedMessage, now: float) -> tuple[Any, ...]:
    """Values of ``INSERT`` for a newly parked message."""
    first = message.first_failed_at
    return (
        message.flow,
        message.flow_version,
        message.sink,
        message.message_id,
        message.correlation_id,
        message.ordering_key,
        message.idempotency_key,
        message.attempt,
        encode_payload(message.payload),
        encode_payload(message.original),
        encode_json_text(message.headers),
        None if message.source_position is None else encode_json_text(message.source_position),
        message.reason,
        message.error_class,
        message.detail,
        message.dead_letter_id,
        message.next_attempt_at.timestamp(),
        now if first is None else first.timestamp(),
        now,
        encode_json_text([*message.history, history_entry(message, now)]),
    )


def update_row(message: ParkedMessage, now: float) -> tuple[Any, ...]:
    """Values of ``UPDATE`` for a message parked again after another failed attempt."""
    return (
        message.flow_version,
        message.attempt,
        encode_payload(message.payload),
        encode_json_text(message.headers),
        message.reason,
        message.error_class,
        message.detail,
        message.next_attempt_at.timestamp(),
        now,
        encode_json_text([*message.history, history_entry(message, now)]),
        message.id,
    )


def from_row(row: Sequence[Any]) -> ParkedMessage:
    """A parked message from a row selected with ``COLUMNS``."""
    values = dict(zip(FIELDS, row, strict=True))
    position = values["source_position"]
    next_at = timestamp(values["next_attempt_at"])
    assert next_at is not None
    return ParkedMessage(
        **values
        | {
            "payload": decode_payload(bytes(values["payload"])),
            "original": decode_payload(bytes(values["original"])),
            "headers": decode_json(values["headers"]),
            "source_position": None if position is None else decode_json(position),
            "next_attempt_at": next_at,
            "first_failed_at": timestamp(values["first_failed_at"]),
            "last_failed_at": timestamp(values["last_failed_at"]),
            "history": decode_json(values["history"]),
        }
    )


def listing(flow: str | None, limit: int | None) -> tuple[str, list[Any]]:
    """``SELECT`` of parked messages, oldest first, with its parameters."""
    sql = f"SELECT {COLUMNS} FROM dovetail_parked"
    params: list[Any] = []
    if flow is not None:
        sql += " WHERE flow = ?"
        params.append(flow)
    sql += " ORDER BY id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return sql, params


def counting(flow: str | None) -> tuple[str, list[Any]]:
    """``SELECT count(*)`` of parked messages, with its parameters."""
    if flow is None:
        return "SELECT count(*) FROM dovetail_parked", []
    return "SELECT count(*) FROM dovetail_parked WHERE flow = ?", [flow]


def blocking(column: str, flow: str, sink: str, keys: Sequence[str]) -> tuple[str, list[Any]]:
    """``SELECT`` of the ``keys`` that have a parked message at ``sink`` (``column`` is
    ``ordering_key`` or ``idempotency_key``)."""
    if column not in {"ordering_key", "idempotency_key"}:
        raise ValueError(f"not a parked key column: {column}")
    marks = ", ".join("?" * len(keys))
    sql = (
        f"SELECT DISTINCT {column} FROM dovetail_parked"
        f" WHERE flow = ? AND sink = ? AND {column} IN ({marks})"
    )
    return sql, [flow, sink, *keys]


def lease_until(now: float, lease: float) -> float:
    """The next-attempt time of a leased message."""
    return max(now, time.time()) + lease
