"""The broker connectors' one body codec: round trips, limits and poison bodies."""

from __future__ import annotations

import base64
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dovetail.connectors.payload_codec import (
    BodyFormat,
    decode_body,
    encode_payload,
    poison_text,
    read_body,
)
from dovetail.errors import PayloadRejected, PermanentError
from dovetail.safety.limits import EXCERPT_CHARS

PROPERTY = settings(max_examples=150, deadline=None)
FORMATS: tuple[BodyFormat, ...] = get_args(BodyFormat)
REASONS = ("invalid JSON: ", "nesting deeper than the limit of ", "message is ")

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
texts = st.text(alphabet=st.characters(blacklist_categories=["Cs"]))  # no lone surrogates


@PROPERTY
@given(json_values)
def test_json_payloads_survive_the_round_trip(payload: Any) -> None:
    body = encode_payload(payload, "json")
    assert decode_body(body, "json", max_bytes=None, max_depth=64) == payload


@PROPERTY
@given(texts)
def test_text_payloads_survive_the_round_trip(payload: str) -> None:
    body = encode_payload(payload, "text")
    assert decode_body(body, "text", max_bytes=None, max_depth=64) == payload


@PROPERTY
@given(st.binary(max_size=512))
def test_any_bytes_survive_the_base64_round_trip(body: bytes) -> None:
    payload = decode_body(body, "bytes-base64", max_bytes=None, max_depth=64)
    assert isinstance(payload, str) and base64.b64decode(payload) == body
    assert encode_payload(payload, "bytes-base64") == body


@PROPERTY
@given(st.binary(max_size=300), st.sampled_from(FORMATS), st.integers(0, 400))
def test_any_body_is_read_or_kept_as_poison_with_a_reason(
    body: bytes, fmt: BodyFormat, max_bytes: int
) -> None:
    payload, rejected = read_body(body, fmt, max_bytes=max_bytes, max_depth=8)
    if rejected is None:
        assert len(body) <= max_bytes
        assert payload == decode_body(body, fmt, max_bytes=max_bytes, max_depth=8)
        return
    assert payload == poison_text(body)
    assert isinstance(payload, str) and len(payload) <= EXCERPT_CHARS + 60
    assert rejected.reason.startswith(REASONS), rejected.reason
    if len(body) > max_bytes:
        assert "larger than the limit" in rejected.reason


@PROPERTY
@given(st.integers(1, 40), st.integers(0, 40))
def test_json_nested_past_the_limit_is_poison(depth: int, limit: int) -> None:
    body = b"[" * depth + b"]" * depth
    payload, rejected = read_body(body, "json", max_bytes=None, max_depth=limit)
    if depth <= limit:
        assert rejected is None
    else:
        assert rejected is not None
        assert rejected.reason == f"nesting deeper than the limit of {limit} levels"
        assert payload == body.decode()


def test_reasons_name_the_problem_not_the_body() -> None:
    _, bad_json = read_body(b'{"card": "4111 1111', "json", max_bytes=100, max_depth=8)
    assert bad_json is not None and bad_json.reason.startswith("invalid JSON: ")
    assert "4111" not in bad_json.reason
    _, too_big = read_body(b"x" * 11, "text", max_bytes=10, max_depth=8, what="record")
    assert too_big is not None
    assert too_big.reason == "record is 11 bytes, larger than the limit of 10 bytes"
    _, not_utf8 = read_body(b"\xff", "text", max_bytes=None, max_depth=8, what="the payload")
    assert not_utf8 is not None
    assert not_utf8.reason == "the payload is not valid UTF-8: invalid start byte"


@pytest.mark.parametrize(
    ("payload", "fmt", "reason"),
    [
        ({"a": 1}, "text", "format text needs a string payload, found dict"),
        (None, "bytes-base64", "format bytes-base64 needs a string payload, found null"),
        ("not base64!", "bytes-base64", "the payload is not valid base64 text"),
        ("\ud800", "text", "the payload is not valid Unicode text"),
        ({1, 2}, "json", "payload cannot be sent as JSON: "),
        (2**64, "json", "payload cannot be sent as JSON: "),
    ],
)
def test_payloads_that_cannot_be_written_are_permanent_failures(
    payload: Any, fmt: BodyFormat, reason: str
) -> None:
    with pytest.raises(PermanentError) as caught:
        encode_payload(payload, fmt)
    assert caught.value.reason.startswith(reason)


def test_poison_text_replaces_invalid_utf8_and_keeps_a_missing_body_empty() -> None:
    assert poison_text(b"ok \xff") == "ok \ufffd"
    assert poison_text(None) == ""
    with pytest.raises(PayloadRejected):
        decode_body(b"{", "json", max_bytes=None, max_depth=8)
