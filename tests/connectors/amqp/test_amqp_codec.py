"""Bodies, payloads and headers of the amqp connector, and its config rules (no broker needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from pydantic import ValidationError

from dovetail.connectors.amqp import sink, source
from dovetail.connectors.amqp.codec import header_text, headers_from_amqp
from dovetail.connectors.amqp.config import (
    AmqpSinkConfig,
    AmqpSourceConfig,
    describe_url,
)
from dovetail.connectors.amqp.connection import classify_error
from dovetail.errors import PermanentError, TransientError
from dovetail.plugins.spec import ComponentSpec
from dovetail.testing.components import build_component

PROPERTY = settings(max_examples=100, deadline=None)
URL = "amqp://guest:guest@127.0.0.1:5672/"


def test_header_values_become_text() -> None:
    stamp = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    headers = headers_from_amqp(
        {"X-Tenant": b"eu", "count": 3, "ok": False, "at": stamp, "price": Decimal("1.50")}
        | {"tags": ["a", 1], "gone": None}
    )
    assert headers == {
        "x-tenant": "eu",
        "count": "3",
        "ok": "false",
        "at": "2026-01-02T03:04:05+00:00",
        "price": "1.50",
        "tags": '["a",1]',
    }
    assert header_text(None) is None


def test_passwords_never_show_in_descriptions() -> None:
    assert describe_url("amqp://app:s3cret@mq:5671/prod") == "amqp://app:***@mq:5671/prod"
    assert describe_url("amqp://mq/") == "amqp://mq/"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"url": URL, "queue": "q", "batch_size": 50, "prefetch": 10}, "cannot be larger"),
        ({"url": URL, "queue": "q", "queue_type": "quorum", "durable": False}, "always durable"),
        ({"url": "http://mq/", "queue": "q"}, "amqp:// or amqps://"),
        ({"url": URL, "queue": "q", "prefetch": 0}, "greater than or equal to 1"),
    ],
)
def test_source_config_mistakes_are_explained(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AmqpSourceConfig.model_validate(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"url": URL}, "exactly one of"),
        ({"url": URL, "routing_key": "a", "routing_key_expression": "b"}, "exactly one of"),
        ({"url": URL, "routing_key_expression": "region &"}, "JSONata"),
        ({"url": URL, "routing_key": "k" * 256}, "255 bytes"),
    ],
)
def test_sink_config_mistakes_are_explained(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AmqpSinkConfig.model_validate(raw)


def test_library_errors_are_translated_once() -> None:
    from aiormq import exceptions as amqp

    assert isinstance(classify_error(ConnectionRefusedError(111, "refused"), "x"), TransientError)
    assert isinstance(classify_error(TimeoutError(), "x"), TransientError)
    not_found = amqp.ChannelNotFoundEntity("NOT_FOUND - no exchange 'e' in vhost '/'")
    assert isinstance(classify_error(not_found, "x"), PermanentError)
    refused = amqp.ProbableAuthenticationError("ACCESS_REFUSED - Login was refused")
    assert "refused the login" in classify_error(refused, "x").reason
    assert isinstance(classify_error(ValueError("odd"), "x"), PermanentError)


EXAMPLES = [(spec, example) for spec in (source.SPEC, sink.SPEC) for example in spec.examples]


@pytest.mark.parametrize(("spec", "example"), EXAMPLES)
def test_spec_examples_build(spec: ComponentSpec, example: str, tmp_path: Path) -> None:
    component = build_component(spec.kind, example, tmp_path, once=True)
    assert type(component).__module__ == spec.factory.__module__


def test_every_config_field_is_documented() -> None:
    for spec in (source.SPEC, sink.SPEC):
        assert spec.extra == "amqp" and spec.modules == ("aio_pika",)
        schema = spec.config.model_json_schema()
        for name, field in schema["properties"].items():
            assert field.get("description"), f"{spec.kind} {spec.name}.{name} has no description"
