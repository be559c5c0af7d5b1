"""Keys evaluated on input messages: the ordering lane and the idempotency key."""

from __future__ import annotations

import zlib

from dovetail.core.envelope import Envelope
from dovetail.core.steps import mark_failed
from dovetail.delivery.sink_delivery import IDEMPOTENCY_HEADER, ORDERING_HEADER
from dovetail.errors import PermanentError
from dovetail.mapping.jsonata import Expression

MAX_KEY_LENGTH = 500
"""Longest idempotency or ordering key the store keeps (its key columns' length)."""


def assign_lanes(
    batch: list[Envelope], lanes: int, expression: Expression | None
) -> dict[int, list[Envelope]]:
    """Split a batch by the hash of each message's ordering key (stable across runs); a
    message whose key cannot be evaluated is marked failed and goes to lane 0."""
    shares: dict[int, list[Envelope]] = {}
    assert expression is not None
    for envelope in batch:
        lane = 0
        if envelope.failure is None:
            try:
                value = expression.evaluate(envelope.payload)
            except Exception as exc:
                mark_failed(envelope, "delivery", exc)
            else:
                if value is None or isinstance(value, dict | list):
                    reason = f"ordering key {expression.source!r} gave no scalar value"
                    mark_failed(envelope, "delivery", PermanentError(reason))
                elif (problem := key_problem(str(value))) is not None:
                    reason = f"ordering key {expression.source!r} {problem}"
                    mark_failed(envelope, "delivery", PermanentError(reason))
                else:
                    key = str(value)
                    envelope.headers[ORDERING_HEADER] = key
                    lane = zlib.crc32(key.encode()) % lanes
        shares.setdefault(lane, []).append(envelope)
    return shares


def stamp_idempotency_key(envelope: Envelope, expression: Expression | None) -> bool:
    """Evaluate the idempotency key on the input message; False (the message marked failed)
    when it cannot be."""
    if expression is None or IDEMPOTENCY_HEADER in envelope.headers:
        return True
    try:
        value = expression.evaluate(envelope.payload)
    except Exception as exc:
        mark_failed(envelope, "delivery", exc)
        return False
    if value is None or isinstance(value, dict | list) or value == "":
        reason = f"idempotency key {expression.source!r} gave no scalar value"
        mark_failed(envelope, "delivery", PermanentError(reason))
        return False
    problem = key_problem(str(value))
    if problem is not None:
        reason = f"idempotency key {expression.source!r} {problem}"
        mark_failed(envelope, "delivery", PermanentError(reason))
        return False
    envelope.headers[IDEMPOTENCY_HEADER] = str(value)
    return True


def key_problem(key: str) -> str | None:
    """Why the store cannot keep ``key`` as an idempotency or ordering key, or ``None``."""
    if len(key) > MAX_KEY_LENGTH:
        return f"gave a value longer than {MAX_KEY_LENGTH} characters"
    if "\x00" in key or (not key.isprintable() and _unencodable(key)):
        return "gave a value holding a NUL or a lone surrogate"
    return None


def _unencodable(key: str) -> bool:
    try:
        key.encode()
    except UnicodeEncodeError:
        return True
    return False
