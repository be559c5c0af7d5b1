from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from dovetail.core.ids import (
    correlation_id_from_headers,
    make_traceparent,
    trace_id_from_traceparent,
    uuid7,
)


def test_uuid7_has_version_7_and_rfc_variant() -> None:
    value = uuid.UUID(uuid7())
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_uuid7_sorts_by_creation_time() -> None:
    ids = [uuid7() for _ in range(2000)]
    prefixes = [i[:13] for i in ids]  # the millisecond timestamp part
    assert prefixes == sorted(prefixes)
    assert len(set(ids)) == len(ids)


@given(
    st.text(alphabet="0123456789abcdef", min_size=32, max_size=32).filter(lambda s: set(s) != {"0"})
)
def test_traceparent_round_trips_the_trace_id(trace_id: str) -> None:
    assert trace_id_from_traceparent(make_traceparent(trace_id)) == trace_id


def test_invalid_traceparent_is_ignored() -> None:
    assert trace_id_from_traceparent("01-xyz") is None
    assert trace_id_from_traceparent("00-" + "0" * 32 + "-" + "1" * 16 + "-01") is None


def test_correlation_id_prefers_traceparent_then_header() -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {"traceparent": f"00-{trace}-00f067aa0ba902b7-01", "x-correlation-id": "abc"}
    assert correlation_id_from_headers(headers) == trace
    assert correlation_id_from_headers({"x-correlation-id": "abc"}) == "abc"
    fresh = correlation_id_from_headers({})
    assert len(fresh) == 32 and fresh != correlation_id_from_headers({})
