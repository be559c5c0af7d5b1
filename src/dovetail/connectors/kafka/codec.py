"""Kafka record values to payloads and back, and record headers to envelope headers."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable

import orjson

from dovetail.connectors.kafka.config import PayloadFormat
from dovetail.errors import PayloadRejected, PermanentError
from dovetail.safety.limits import check_depth, check_size, excerpt
from dovetail.types import Headers, Payload


def decode_value(
    value: bytes | None, fmt: PayloadFormat, *, max_bytes: int, max_depth: int
) -> Payload:
    """The payload of a record value; raises ``PayloadRejected`` when it cannot be read."""
    if value is None:
        raise PayloadRejected("the record has no value (a tombstone)")
    check_size(len(value), max_bytes, "record")
    if fmt == "bytes-base64":
        return base64.b64encode(value).decode("ascii")
    if fmt == "json":
        try:
            payload = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise PayloadRejected(f"the record value is not valid JSON: {exc}") from None
        check_depth(payload, max_depth)
        return payload
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadRejected(f"the record value is not valid UTF-8: {exc.reason}") from None


def rejected_value(value: bytes | None) -> str:
    """What a dead letter keeps of a value that could not be read: its text, cut to size."""
    return excerpt((value or b"").decode("utf-8", errors="replace"))


def encode_payload(payload: Payload, fmt: PayloadFormat) -> bytes:
    """The record value for ``payload``; raises ``PermanentError`` when it cannot be written."""
    if fmt == "json":
        try:
            return orjson.dumps(payload)
        except TypeError as exc:
            raise PermanentError(f"payload cannot be sent as JSON: {exc}") from None
    if not isinstance(payload, str):
        raise PermanentError(f"format {fmt} needs a string payload, found {type(payload).__name__}")
    if fmt == "text":
        return payload.encode("utf-8")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise PermanentError("the payload is not valid base64 text") from None


def headers_from_record(headers: Iterable[tuple[str, bytes]] | None) -> Headers:
    """Record headers as envelope headers: lower-case names, UTF-8 text values (the last
    value wins when a name repeats)."""
    result: Headers = {}
    for name, value in headers or ():
        result[str(name).lower()] = (value or b"").decode("utf-8", errors="replace")
    return result
