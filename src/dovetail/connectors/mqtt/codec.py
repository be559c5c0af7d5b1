"""Payloads and MQTT 5 user properties, in and out."""

from __future__ import annotations

from typing import Any, Literal

import orjson

from dovetail.errors import PayloadRejected
from dovetail.safety.limits import check_depth, check_size
from dovetail.types import Headers, Payload

Format = Literal["json", "text"]

TRACE_HEADERS = ("traceparent", "x-correlation-id", "idempotency-key")
"""Headers written as MQTT 5 user properties on every published message that has them."""


def decode_payload(data: bytes, fmt: Format, max_bytes: int, max_depth: int) -> Payload:
    """Parse a message body; raises ``PayloadRejected`` when it is too large or malformed."""
    check_size(len(data), max_bytes, "the payload")
    if fmt == "json":
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise PayloadRejected(f"invalid JSON: {exc}") from None
        check_depth(value, max_depth)
        return value
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadRejected(f"the payload is not valid UTF-8: {exc.reason}") from None


def encode_payload(payload: Payload, fmt: Format) -> bytes:
    """Serialise a payload: JSON, or text (a string as is, anything else as JSON)."""
    if fmt == "text" and isinstance(payload, str):
        return payload.encode("utf-8")
    if isinstance(payload, bytes):
        return payload
    return orjson.dumps(payload)


def raw_text(data: bytes) -> str:
    """The body as text for the dead-letter queue when it could not be parsed."""
    return data.decode("utf-8", errors="replace")


def headers_from_properties(properties: Any) -> Headers:
    """MQTT 5 user properties (and content type) as lower-case headers; ``{}`` on 3.1.1."""
    if properties is None:
        return {}
    headers: Headers = {}
    for name, value in getattr(properties, "UserProperty", None) or ():
        headers[str(name).lower()] = str(value)
    content_type = getattr(properties, "ContentType", None)
    if content_type:
        headers.setdefault("content-type", str(content_type))
    return headers


def publish_properties(headers: Headers, content_type: str | None) -> Any:
    """PUBLISH properties carrying the trace headers as user properties (MQTT 5 only)."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    pairs = [(name, headers[name]) for name in TRACE_HEADERS if headers.get(name)]
    if pairs:
        properties.UserProperty = pairs
    if content_type:
        properties.ContentType = content_type
    return properties
