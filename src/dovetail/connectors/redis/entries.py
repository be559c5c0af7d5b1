"""Stream entries to messages and back: the payload field, the whole field map, trace fields."""

from __future__ import annotations

from typing import Any

from dovetail.connectors.payload_codec import TextFormat, decode_body, encode_json
from dovetail.errors import PayloadRejected, PermanentError
from dovetail.safety.limits import check_size
from dovetail.types import Headers, Payload

TRACE_FIELDS = ("traceparent", "x-correlation-id", "idempotency-key")
"""Fields that carry trace context: read as headers, written with every entry."""


def text(value: bytes | str) -> str:
    """A field name or value as text (invalid UTF-8 replaced)."""
    return value if isinstance(value, str) else value.decode("utf-8", errors="replace")


def read_entry(
    fields: dict[bytes, bytes],
    field: str | None,
    fmt: TextFormat,
    max_bytes: int,
    max_depth: int,
) -> tuple[Payload, Headers]:
    """The payload and headers of one entry.

    With ``field``, the payload is that field parsed as ``fmt`` and every other field is a
    header (lower-case name). Without, the payload is the map of all fields as text, except
    the trace fields, which are headers. Raises ``PayloadRejected`` for an entry that has no
    ``field`` or whose value does not parse.
    """
    if field is None:
        size = sum(len(name) + len(value) for name, value in fields.items())
        check_size(size, max_bytes, "the entry")
        payload: dict[str, Any] = {}
        headers: Headers = {}
        for name, value in fields.items():
            key = text(name)
            if key.lower() in TRACE_FIELDS:
                headers[key.lower()] = text(value)
            else:
                payload[key] = text(value)
        return payload, headers
    wanted = field.encode("utf-8")
    headers = {text(n).lower(): text(v) for n, v in fields.items() if n != wanted}
    raw = fields.get(wanted)
    if raw is None:
        raise PayloadRejected(f"the entry has no field {field!r}")
    payload = decode_body(raw, fmt, max_bytes=max_bytes, max_depth=max_depth, what="the payload")
    return payload, headers


def entry_as_text(fields: dict[bytes, bytes] | None) -> dict[str, str]:
    """The entry as a text map, kept in the dead-letter queue when it could not be parsed."""
    return {text(name): text(value) for name, value in (fields or {}).items()}


def write_entry(
    payload: Payload, field: str | None, fmt: TextFormat, trace: Headers
) -> list[bytes | str]:
    """Field/value pairs (flattened) for XADD: the payload, then the ``trace`` fields.

    Raises ``PermanentError`` when ``field`` is unset and the payload is not an object.
    """
    pairs: list[bytes | str] = []
    if field is not None:
        if fmt == "text" and isinstance(payload, str):
            value: bytes | str = payload
        else:
            value = encode_json(payload)
        pairs += [field, value]
    else:
        if not isinstance(payload, dict) or not payload:
            raise PermanentError(
                "without `field`, the payload must be a non-empty object (one field per key)"
            )
        for name, item in payload.items():
            if str(name).lower() in TRACE_FIELDS:
                continue
            pairs += [str(name), _scalar(item)]
    for name in TRACE_FIELDS:
        if trace.get(name):
            pairs += [name, trace[name]]
    return pairs


def _scalar(value: Any) -> bytes | str:
    if isinstance(value, str | bytes):
        return value
    return encode_json(value)
