from __future__ import annotations

import itertools
import multiprocessing
import time
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dovetail.core import ids
from dovetail.core.ids import (
    correlation_id_from_headers,
    make_traceparent,
    new_trace_id,
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


def _ids_in_child(count: int) -> list[str]:
    return [uuid7() for _ in range(count)]


def _trace_ids_in_child(count: int) -> list[str]:
    return [new_trace_id() for _ in range(count)]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=600), min_size=1, max_size=8))
def test_uuid7_is_unique_and_strictly_increasing_across_batches(batches: list[int]) -> None:
    ids: list[str] = []
    for size in batches:  # a batch of ids, then a pause of up to a millisecond or so
        ids.extend(uuid7() for _ in range(size))
        time.sleep(size % 3 / 1000)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    for value in ids:
        parsed = uuid.UUID(value)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == value


def test_uuid7_keeps_increasing_when_the_clock_steps_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = uuid7()
    real = time.time_ns()
    monkeypatch.setattr(time, "time_ns", lambda: real - 3_600_000_000_000)
    after = [uuid7() for _ in range(100)]
    assert [before, *after] == sorted({before, *after})


@settings(max_examples=5, deadline=None)
@given(st.integers(min_value=2, max_value=4), st.integers(min_value=200, max_value=2000))
def test_ids_are_unique_across_forked_processes(processes: int, count: int) -> None:
    uuid7(), new_trace_id()  # the parent's generator is in use when it forks
    context = multiprocessing.get_context("fork")
    with context.Pool(processes) as pool:
        ids = pool.map(_ids_in_child, [count] * processes)
        traces = pool.map(_trace_ids_in_child, [count] * processes)
    for own in ids:
        assert own == sorted(own)
    every = [i for own in ids for i in own]
    assert len(set(every)) == len(every)
    every_trace = [t for own in traces for t in own]
    assert len(set(every_trace)) == len(every_trace)


def test_trace_ids_are_valid_unique_w3c_trace_ids() -> None:
    traces = [new_trace_id() for _ in range(5000)]
    assert len(set(traces)) == len(traces)
    for trace in traces:
        assert trace_id_from_traceparent(f"00-{trace}-00f067aa0ba902b7-01") == trace


def test_trace_ids_low_half_spreads_for_ratio_sampling() -> None:
    lows = [int(new_trace_id()[16:], 16) for _ in range(4000)]
    below_half = sum(1 for low in lows if low < 1 << 63)
    assert 1600 < below_half < 2400  # a 50% ratio sampler keeps about half


def test_uuid7_moves_to_the_next_millisecond_when_its_counter_runs_out() -> None:
    first = uuid7()
    ids._block.counter = itertools.count(ids._COUNTER_END - 2)
    following = [uuid7() for _ in range(4)]
    assert [first, *following] == sorted({first, *following})
    assert all(uuid.UUID(i).version == 7 for i in following)


def test_trace_ids_of_later_milliseconds_sort_after_earlier_ones() -> None:
    blocks: list[list[str]] = []
    for _ in range(20):
        blocks.append([new_trace_id() for _ in range(50)])
        time.sleep(0.002)
    for earlier, later in itertools.pairwise(blocks):
        assert max(t[:12] for t in earlier) < min(t[:12] for t in later)
