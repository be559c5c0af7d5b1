"""Config validation and record encoding of the ``kafka`` source and sink."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from dovetail.connectors.kafka import sink, source
from dovetail.connectors.kafka.codec import headers_from_record
from dovetail.connectors.kafka.config import KafkaSinkConfig, KafkaSourceConfig
from dovetail.connectors.payload_codec import poison_text
from dovetail.core.ack import Settlement
from dovetail.core.envelope import Envelope
from dovetail.errors import PermanentError
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


def test_record_headers_become_text_headers() -> None:
    assert headers_from_record([("TraceParent", b"x"), ("k", b"\xff")]) == {
        "traceparent": "x",
        "k": "\ufffd",
    }


def test_every_config_field_is_documented() -> None:
    for spec in (source.SPEC, sink.SPEC):
        for name, field in spec.config.model_json_schema()["properties"].items():
            assert field.get("description"), f"{spec.name}.{name} has no description"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "the record has no value (a tombstone)"),
        (b'{"order_id": ', "invalid JSON: "),
        (b"x" * 2048, "record is 2 KiB, larger than the limit of 1 KiB"),
    ],
)
def test_unreadable_records_become_poison_with_their_text(
    tmp_path: Path, value: bytes | None, reason: str
) -> None:
    component = build_component(
        "source",
        "kafka: {bootstrap_servers: ['h:1'], topics: [orders], group_id: g,"
        " max_record_bytes: 1KiB}",
        tmp_path,
    )
    record = SimpleNamespace(topic="orders", partition=0, offset=7, key=None, headers=[])
    record.value = value
    envelope = component._envelope(("orders", 0), record)
    assert envelope.failure is not None and envelope.failure.reason.startswith(reason)
    assert envelope.failure.step == "source"
    assert envelope.payload == poison_text(value)
