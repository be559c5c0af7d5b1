"""The store codec: every value a source or step produces is stored and read back equal."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given

from dovetail.store.codec import (
    MAX_DEPTH,
    TAG,
    UnstorableValue,
    decode_json,
    decode_payload,
    encode_json,
    encode_payload,
    storable_text,
)
from tests.store.values import any_text, non_str_keyed, payloads, reader_values, same


@given(reader_values)
def test_every_json_value_a_reader_produces_round_trips(value: Any) -> None:
    assert same(decode_payload(encode_payload(value)), value)


@given(payloads)
def test_python_values_round_trip_with_their_types(value: Any) -> None:
    assert same(decode_payload(encode_payload(value)), value)


@given(non_str_keyed)
def test_objects_with_non_text_keys_round_trip(value: dict[Any, Any]) -> None:
    assert same(decode_json(encode_json(value)), value)


@given(payloads)
def test_every_encoding_is_strict_json(value: Any) -> None:
    """Text columns stay readable by SQL JSON functions (``json_extract``, ``::json``)."""
    json.loads(encode_json(value), parse_constant=_refuse)


@given(reader_values)
def test_plain_json_is_written_by_orjson_unchanged(value: Any) -> None:
    """The common path costs what orjson costs: its output, no wrapper."""
    try:
        expected = orjson.dumps(value)
    except TypeError:
        return
    if orjson.loads(expected) == value and not (isinstance(value, dict) and TAG in value):
        assert encode_json(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        99999999999999999999999999,
        -(2**64),
        float("nan"),
        float("inf"),
        {"order_id": 2**70, "total": float("-inf")},
        "lone \ud800 surrogate",
        {"\udfff": [b"\x00\xff"]},
        {TAG: 1, "value": "looks tagged"},
        {TAG: "float", "v": "nan"},
    ],
)
def test_values_orjson_refuses_or_alters_round_trip(value: Any) -> None:
    assert same(decode_payload(encode_payload(value)), value)


def test_rows_stored_before_the_tagged_form_still_read() -> None:
    assert decode_payload(b'j:{"a":[1,2.5,null]}') == {"a": [1, 2.5, None]}
    assert decode_payload(b'{"a":1}') == {"a": 1}
    assert decode_json('{"x-correlation-id":"c"}') == {"x-correlation-id": "c"}


def test_nesting_deeper_than_any_reader_allows_is_refused_clearly() -> None:
    deep: list[Any] = []
    inner = deep
    for _ in range(MAX_DEPTH + 10):
        inner.append([])
        inner = inner[0]
    with pytest.raises(UnstorableValue, match="nested deeper"):
        encode_json(deep)


@given(any_text)
def test_storable_text_is_what_every_store_keeps_and_leaves_the_rest_alone(text: str) -> None:
    kept = storable_text(text)
    kept.encode("utf-8")  # no lone surrogate (SQLite and PostgreSQL refuse them)
    assert "\x00" not in kept  # no NUL (PostgreSQL refuses it)
    assert len(kept) == len(text)
    assert all(a == b or b == "\ufffd" for a, b in zip(text, kept, strict=True))
    if (
        "\x00" not in text
        and text.encode("utf-8", "surrogatepass").decode("utf-8", "ignore") == text
    ):
        assert kept == text


def _refuse(constant: str) -> None:
    raise ValueError(f"not JSON: {constant}")
