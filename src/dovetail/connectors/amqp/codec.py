"""Message bodies to payloads and back, and AMQP header tables to envelope headers."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from dovetail.connectors.amqp.config import PayloadFormat
from dovetail.errors import PayloadRejected, PermanentError
from dovetail.safety.limits import check_size, excerpt, nesting_depth
from dovetail.types import Headers, Payload

CONTENT_TYPES: dict[str, str] = {
    "json": "application/json",
    "text": "text/plain; charset=utf-8",
    "bytes-base64": "application/octet-stream",
}


def decode_body(body: bytes, fmt: PayloadFormat, *, max_bytes: int, max_depth: int) -> Payload:
    """The payload of a message body; raises ``PayloadRejected`` when it cannot be read."""
    check_size(len(body), max_bytes, "message")
    if fmt == "bytes-base64":
        return base64.b64encode(body).decode("ascii")
    if fmt == "json":
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise PayloadRejected(f"the message body is not valid JSON: {exc}") from None
        if nesting_depth(value, max_depth) > max_depth:
            raise PayloadRejected(f"JSON nested deeper than the limit of {max_depth} levels")
        return value
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadRejected(f"the message body is not valid UTF-8: {exc.reason}") from None


def rejected_body(body: bytes) -> str:
    """What a dead letter keeps of a body that could not be read: its text, cut to size."""
    return excerpt(body.decode("utf-8", errors="replace"))


def encode_payload(payload: Payload, fmt: PayloadFormat) -> bytes:
    """The message body for ``payload``; raises ``PermanentError`` when it cannot be written."""
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
