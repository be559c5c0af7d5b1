"""Payloads out and MQTT 5 user properties in and out (bodies are read by
``dovetail.connectors.payload_codec``)."""

from __future__ import annotations

from typing import Any

from dovetail.connectors.payload_codec import TextFormat, encode_json
from dovetail.types import Headers, Payload

TRACE_HEADERS = ("traceparent", "x-correlation-id", "idempotency-key")
"""Headers written as MQTT 5 user properties on every published message that has them."""


def encode_payload(payload: Payload, fmt: TextFormat) -> bytes:
    """Serialise a payload: JSON, or text (a string as is, anything else as JSON); raises
    ``PermanentError`` for a value JSON cannot represent."""
    if fmt == "text" and isinstance(payload, str):
        return payload.encode("utf-8")
    if isinstance(payload, bytes):
        return payload
    return encode_json(payload)


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
