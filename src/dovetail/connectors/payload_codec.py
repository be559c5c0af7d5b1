"""Broker message bodies to payloads and back: the one decoding path, with poison handling.

Every broker connector (``amqp``, ``nats``, ``mqtt``, ``redis``, ``kafka``) reads a body in one
of three formats: ``json`` (parsed, nesting bounded by ``max_depth``), ``text`` (UTF-8) or
``bytes-base64`` (the raw bytes as base64 text). A body that cannot be read is *poison*: no
redelivery can fix it, so ``read_body`` hands back the body's text (invalid UTF-8 replaced, cut
to size) as the payload together with the rejection, and the source dead-letters the message
with that reason instead of retrying it. Rejection reasons name the problem, never the body.
"""

from __future__ import annotations

import base64
import binascii
from typing import Literal

import orjson

from dovetail.errors import PayloadRejected, PermanentError
from dovetail.safety.limits import check_depth, check_size, excerpt
from dovetail.types import Payload

BodyFormat = Literal["json", "text", "bytes-base64"]
"""How a message body is read into a payload, and a payload written as a body."""

TextFormat = Literal["json", "text"]
"""The body formats of connectors whose bodies are text (``nats``, ``mqtt``, ``redis``)."""


def decode_body(
    body: bytes, fmt: BodyFormat, *, max_bytes: int | None, max_depth: int, what: str = "message"
) -> Payload:
    """The payload of ``body``; raises ``PayloadRejected`` when it cannot be read.

    ``max_bytes`` (``None``: no limit) bounds the body, ``max_depth`` the nesting of JSON;
    ``what`` names the body in the size reason (``message is 2 MiB, larger than ...``).
    """
    if max_bytes is not None:
        check_size(len(body), max_bytes, what)
    if fmt == "bytes-base64":
        return base64.b64encode(body).decode("ascii")
    if fmt == "json":
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise PayloadRejected(f"invalid JSON: {exc}") from None
        check_depth(value, max_depth)
        return value
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadRejected(f"{what} is not valid UTF-8: {exc.reason}") from None


def poison_text(body: bytes | None) -> str:
    """What a dead letter keeps of a body that could not be read: its text, cut to size."""
    return excerpt((body or b"").decode("utf-8", errors="replace"))


def read_body(
    body: bytes, fmt: BodyFormat, *, max_bytes: int | None, max_depth: int, what: str = "message"
) -> tuple[Payload, PayloadRejected | None]:
    """``(payload, None)`` for a readable body; ``(poison_text(body), rejection)`` for poison.

    Never raises for the body's content: the caller dead-letters a rejected message.
    """
    try:
        return decode_body(body, fmt, max_bytes=max_bytes, max_depth=max_depth, what=what), None
    except PayloadRejected as exc:
        return poison_text(body), exc


def encode_json(payload: Payload) -> bytes:
    """``payload`` as JSON; raises ``PermanentError`` for a value JSON cannot represent."""
    try:
        return orjson.dumps(payload)
    except TypeError as exc:
        raise PermanentError(f"payload cannot be sent as JSON: {exc}") from None


def encode_payload(payload: Payload, fmt: BodyFormat) -> bytes:
    """The body for ``payload`` (the inverse of ``decode_body``); raises ``PermanentError``
    when the payload cannot be written in ``fmt``."""
    if fmt == "json":
        return encode_json(payload)
    if not isinstance(payload, str):
        kind = "null" if payload is None else type(payload).__name__
        raise PermanentError(f"format {fmt} needs a string payload, found {kind}")
    if fmt == "text":
        try:
            return payload.encode("utf-8")
        except UnicodeEncodeError:
            raise PermanentError("the payload is not valid Unicode text") from None
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise PermanentError("the payload is not valid base64 text") from None
