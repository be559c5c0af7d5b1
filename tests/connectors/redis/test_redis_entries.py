"""Entries to messages and back: what the sink writes, the source reads (property-based)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dovetail.connectors.redis.connection import describe_url
from dovetail.connectors.redis.entries import read_entry, write_entry
from dovetail.errors import PayloadRejected

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
names = st.text(min_size=1).filter(
    lambda n: n.lower() not in {"traceparent", "x-correlation-id", "idempotency-key"}
)


def as_fields(pairs: list[bytes | str]) -> dict[bytes, bytes]:
    """The field map Redis hands back for XADD's flattened field/value pairs."""
    raw = [p if isinstance(p, bytes) else p.encode() for p in pairs]
    return dict(zip(raw[::2], raw[1::2], strict=True))


@given(payload=json_values, correlation=st.text(min_size=1, max_size=40))
def test_a_payload_field_round_trips(payload: Any, correlation: str) -> None:
    fields = as_fields(write_entry(payload, "payload", "json", {"x-correlation-id": correlation}))
    read, headers = read_entry(fields, "payload", "json", 1 << 20, 64)
    assert read == payload
    assert headers == {"x-correlation-id": correlation}


@given(payload=st.dictionaries(names, st.text(), min_size=1, max_size=6))
def test_a_field_map_round_trips(payload: dict[str, str]) -> None:
    trace = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    fields = as_fields(write_entry(payload, None, "json", trace))
    read, headers = read_entry(fields, None, "json", 1 << 20, 64)
    assert read == payload
    assert headers == trace


def test_unreadable_entries_are_rejected_with_a_reason() -> None:
    with pytest.raises(PayloadRejected, match="invalid JSON"):
        read_entry({b"payload": b"{"}, "payload", "json", 1024, 64)
    with pytest.raises(PayloadRejected, match="no field 'payload'"):
        read_entry({b"other": b"1"}, "payload", "json", 1024, 64)
    with pytest.raises(PayloadRejected, match="larger than the limit"):
        read_entry({b"payload": orjson.dumps("x" * 100)}, "payload", "json", 50, 64)
    with pytest.raises(PayloadRejected, match="nesting"):
        read_entry({b"payload": b"[[[[1]]]]"}, "payload", "json", 1024, 3)
    with pytest.raises(PayloadRejected, match="UTF-8"):
        read_entry({b"payload": b"\xff\xfe"}, "payload", "text", 1024, 64)


def test_credentials_never_appear_in_described_urls() -> None:
    assert describe_url("redis://user:s3cret@cache:6379/0") == "redis://cache:6379/0"
    assert describe_url("redis://127.0.0.1:6379") == "redis://127.0.0.1:6379"
