"""Message bodies: bytes from NATS to a payload and back (JSON or UTF-8 text)."""

from __future__ import annotations

from typing import Literal

import orjson

from dovetail.errors import PayloadRejected, PermanentError
from dovetail.safety.limits import nesting_depth
from dovetail.types import Payload

BodyFormat = Literal["json", "text"]


def decode_body(body: bytes, fmt: BodyFormat, max_depth: int) -> Payload:
    """Parse a message body; raises ``PayloadRejected`` when it is malformed or too deep."""
    if fmt == "json":
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise PayloadRejected(f"invalid JSON: {exc}") from None
        if nesting_depth(value, max_depth) > max_depth:
            raise PayloadRejected(f"JSON nested deeper than {max_depth} levels")
        return value
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadRejected(f"the body is not valid UTF-8: {exc.reason}") from None


def raw_text(body: bytes) -> str:
    """The body as text for a dead letter (bytes that are not UTF-8 become U+FFFD)."""
    return body.decode("utf-8", errors="replace")


def encode_body(payload: Payload, fmt: BodyFormat) -> bytes:
    """The bytes to publish; raises ``PermanentError`` when the payload cannot be encoded."""
    if fmt == "text":
        if not isinstance(payload, str):
            kind = "null" if payload is None else type(payload).__name__
            raise PermanentError(f"format text needs a string payload, found {kind}")
        return payload.encode("utf-8")
    try:
        return orjson.dumps(payload)
    except TypeError as exc:
        raise PermanentError(f"payload cannot be sent as JSON: {exc}") from None
