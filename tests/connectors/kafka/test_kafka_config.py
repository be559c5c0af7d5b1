"""Config validation and record encoding of the ``kafka`` source and sink."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from dovetail.connectors.kafka import sink, source
from dovetail.connectors.kafka.codec import decode_value, encode_payload, headers_from_record
from dovetail.connectors.kafka.config import KafkaSinkConfig, KafkaSourceConfig
from dovetail.core.ack import Settlement
from dovetail.core.envelope import Envelope
from dovetail.errors import PayloadRejected, PermanentError
from dovetail.testing.components import build_component

BASE: dict[str, Any] = {"bootstrap_servers": ["127.0.0.1:9092"]}


@pytest.mark.parametrize("example", [*source.SPEC.examples, *sink.SPEC.examples])
def test_spec_examples_build(example: str, tmp_path: Path) -> None:
    if "group_id" in example:
        component = build_component("source", example, tmp_path)
    else:
        component = build_component("sink", example, tmp_path)
    assert component.name == "kafka"


def test_both_components_are_experimental() -> None:
    assert source.SPEC.status == sink.SPEC.status == "experimental"
    assert source.SPEC.extra == sink.SPEC.extra == "kafka"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"bootstrap_servers": ["no-port"]}, "host:port"),
        ({"topics": ["bad topic!"]}, "not a Kafka topic"),
        ({"security_protocol": "SASL_SSL"}, "needs sasl_mechanism"),
        ({"sasl_username": "u"}, "need security_protocol"),
        ({"topics": []}, "at least 1"),
    ],
)
def test_source_config_errors(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        KafkaSourceConfig.model_validate({**BASE, "topics": ["orders"], "group_id": "g", **raw})


def test_sink_defaults_are_idempotent_and_key_must_parse() -> None:
    config = KafkaSinkConfig.model_validate({**BASE, "topic": "orders"})
    assert config.idempotence is True
    with pytest.raises(ValidationError):
        KafkaSinkConfig.model_validate({**BASE, "topic": "orders", "key": "order_id +"})


def test_record_key_and_headers(tmp_path: Path) -> None:
    component = build_component(
        "sink", "kafka: {bootstrap_servers: ['h:1'], topic: t, key: order_id}", tmp_path
    )
    assert component.record_key({"order_id": 42}) == b"42"
    assert component.record_key({}) is None
    with pytest.raises(PermanentError):
        component.record_key({"order_id": {"a": 1}})
    envelope = Envelope(
        payload={},
        settlement=Settlement(),
        correlation_id="4bf92f3577b34da6a3ce929d0e0e4736",
        headers={"idempotency-key": "k-1"},
    )
    headers = dict(sink.record_headers(envelope))
    assert headers["traceparent"].startswith(b"00-4bf92f3577b34da6a3ce929d0e0e4736-")
    assert headers["x-correlation-id"] == b"4bf92f3577b34da6a3ce929d0e0e4736"
    assert headers["idempotency-key"] == b"k-1"


def test_values_decode_and_encode() -> None:
    assert decode_value(b'{"a": 1}', "json", max_bytes=100, max_depth=5) == {"a": 1}
    assert decode_value(b"\x00\x01", "bytes-base64", max_bytes=100, max_depth=5) == "AAE="
    for bad in (b"{", None, b"x" * 101):
        with pytest.raises(PayloadRejected):
            decode_value(bad, "json", max_bytes=100, max_depth=5)
    with pytest.raises(PayloadRejected):
        decode_value(b"[[[[1]]]]", "json", max_bytes=100, max_depth=2)
    assert encode_payload("AAE=", "bytes-base64") == b"\x00\x01"
    with pytest.raises(PermanentError):
        encode_payload({"a": 1}, "text")
    assert headers_from_record([("TraceParent", b"x"), ("k", b"\xff")]) == {
        "traceparent": "x",
        "k": "\ufffd",
    }


def test_every_config_field_is_documented() -> None:
    for spec in (source.SPEC, sink.SPEC):
        for name, field in spec.config.model_json_schema()["properties"].items():
            assert field.get("description"), f"{spec.name}.{name} has no description"
