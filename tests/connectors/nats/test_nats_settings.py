"""Settings of the nats components: names, subjects, header values (properties and examples)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats_support import source_snippet
from pydantic import ValidationError

from dovetail.connectors.nats.connection import redact, split_servers, subject_problem
from dovetail.connectors.nats.sink import header_safe
from dovetail.testing.components import build_component

TOKEN = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Z", "C"), exclude_characters=".*>"),
    min_size=1,
    max_size=8,
)
SUBJECT = st.lists(TOKEN, min_size=1, max_size=6).map(".".join)


@given(SUBJECT)
def test_subjects_of_plain_tokens_are_accepted(subject: str) -> None:
    assert subject_problem(subject, wildcards=False) is None
    assert subject_problem(subject, wildcards=True) is None


@given(SUBJECT, st.sampled_from([" ", "\t", "\n", "\r"]), st.integers(min_value=0))
def test_subjects_with_white_space_are_refused(subject: str, space: str, at: int) -> None:
    at %= len(subject) + 1
    assert "white space" in str(
        subject_problem(subject[:at] + space + subject[at:], wildcards=True)
    )


@given(st.lists(TOKEN, min_size=1, max_size=4), st.integers(min_value=0))
def test_an_empty_token_is_refused(tokens: list[str], at: int) -> None:
    at %= len(tokens) + 1
    broken = ".".join([*tokens[:at], "", *tokens[at:]])
    assert "empty token" in str(subject_problem(broken, wildcards=True))


@given(st.lists(TOKEN, min_size=1, max_size=4), st.sampled_from(["*", ">"]))
def test_wildcards_are_filters_never_publish_subjects(tokens: list[str], wildcard: str) -> None:
    subject = ".".join([*tokens, wildcard])
    assert subject_problem(subject, wildcards=True) is None
    assert "wildcard" in str(subject_problem(subject, wildcards=False))


def test_wildcards_in_the_wrong_place_are_refused() -> None:
    for subject in ("orders.>.created", "orders.a*", "orders.>x"):
        assert "wrong place" in str(subject_problem(subject, wildcards=True))


@given(st.text(max_size=40))
def test_header_values_are_visible_ascii_and_stable(value: str) -> None:
    safe = header_safe(value)
    assert safe.isascii() and (safe == "" or safe.isprintable())
    assert header_safe(value) == safe
    if value.isascii() and value.isprintable():
        assert safe == value


def test_credentials_in_urls_are_hidden_and_server_lists_split() -> None:
    url = "nats://app:s3cret@n1:4222, tls://n2:4222"
    assert redact(url) == "nats://***@n1:4222, tls://n2:4222"
    assert split_servers(url) == ["nats://app:s3cret@n1:4222", "tls://n2:4222"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"durable": "orders.v1"}, "durable may hold only letters"),
        ({"stream": "ORDERS V1"}, "stream may hold only letters"),
        ({"subject": "orders..created"}, "empty token"),
        ({"max_deliver": 1}, "greater than or equal to 2"),
        ({"ack_wait": "100ms"}, "greater than or equal to 0.5"),
        ({"deliver_policy": "last"}, "'all' or 'new'"),
        ({"format": "xml"}, "'json' or 'text'"),
        ({"url": "127.0.0.1:4222"}, "nats://host:port"),
        ({"acks": "early"}, "Extra inputs are not permitted"),
    ],
)
def test_source_settings_are_checked_when_the_flow_loads(
    tmp_path: Path, settings: dict[str, Any], message: str
) -> None:
    fields = {"url": "nats://127.0.0.1:4222", "stream": "S", "subject": "s.>", "durable": "d"}
    fields.update(settings)
    snippet = source_snippet(
        str(fields.pop("url")),
        str(fields.pop("stream")),
        str(fields.pop("subject")),
        str(fields.pop("durable")),
        **fields,
    )
    with pytest.raises(ValidationError, match=message):
        build_component("source", snippet, tmp_path)


def test_the_source_batch_size_defaults_to_the_flow_batch_size(tmp_path: Path) -> None:
    from dovetail.connectors.nats.source import NatsSource, NatsSourceConfig
    from dovetail.core.component import BuildContext

    config = NatsSourceConfig(stream="S", subject="s.>", durable="d")
    context = BuildContext(
        flow="f", flow_version="1", project_dir=tmp_path, options={"batch_size": 250}
    )
    assert NatsSource(config, context)._batch_size == 250
    explicit = config.model_copy(update={"batch_size": 20})
    assert NatsSource(explicit, context)._batch_size == 20
