"""Keys evaluated on input messages: the ordering lane, the idempotency key, trace keys."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from dovetail.core.envelope import Envelope
from dovetail.core.steps import mark_failed
from dovetail.delivery.sink_delivery import IDEMPOTENCY_HEADER, ORDERING_HEADER
from dovetail.errors import MappingFailed, PermanentError
from dovetail.mapping.jsonata import Expression
from dovetail.store.base import TraceKey

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
                mark_failed(envelope, "delivery", _key_failed("ordering", expression, exc))
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
        mark_failed(envelope, "delivery", _key_failed("idempotency", expression, exc))
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


def _key_failed(which: str, expression: Expression, error: Exception) -> Exception:
    """A key that cannot be evaluated, named by its expression (config, never a value)."""
    if not isinstance(error, MappingFailed):
        return error
    return MappingFailed(f"{which} key {expression.source!r}: {error.reason}", detail=error.detail)


class TraceKeyReader:
    """Reads each message's business keys (``observability.trace_keys`` and its idempotency
    key) once, for ``dovetail trace KEY``; paths are compiled to plain dict lookups."""

    def __init__(self, paths: Sequence[str]) -> None:
        self._paths = [tuple(path.split(".")) for path in paths]

    def keys_of(self, batch: Iterable[Envelope]) -> list[TraceKey]:
        """The scalar, non-empty key values of ``batch``'s input messages that the store can
        keep (``key_problem``: at most ``MAX_KEY_LENGTH`` characters, no NUL or lone
        surrogate); a value twice for one message is recorded once by the store."""
        found: list[TraceKey] = []
        append = found.append
        paths = self._paths
        for envelope in batch:
            message_id = envelope.id
            key = envelope.headers.get(IDEMPOTENCY_HEADER)
            if key and key_problem(key) is None:
                append(TraceKey(key, message_id))
            if not paths:
                continue
            payload = envelope.original if envelope.original is not None else envelope.payload
            for path in paths:
                value = _read(payload, path)
                if value is not None and value != key and key_problem(value) is None:
                    append(TraceKey(value, message_id))
        return found


def _read(payload: Any, path: tuple[str, ...]) -> str | None:
    """The scalar at ``path`` as text; ``None`` when missing, empty, a boolean or a container."""
    value = payload
    for name in path:
        if type(value) is not dict:
            return None
        value = value.get(name)
    kind = type(value)
    if kind is str:
        return value or None
    if kind is int or kind is float:
        return str(value)
    return None
