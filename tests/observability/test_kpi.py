"""KPIs of a known history: real flows run, fail, retry, dead-letter and are replayed."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dovetail.api import replay_async, run_flow_async
from dovetail.config.loader import load_flow, load_project
from dovetail.config.model import Flow
from dovetail.core.envelope import Envelope
from dovetail.errors import PermanentError, TransientError
from dovetail.observability.kpi import KpiReport, collect_kpis, parse_moment
from dovetail.store.base import DeadLetterQuery, Store
from dovetail.store.factory import store_from_url
from dovetail.testing.fakes import ListSource

ORDERS = """
flow: orders
source: {file: {path: in/*.jsonl, format: jsonl}}
steps:
  - filter: total > 0
sinks:
  erp: {file: {path: out/erp.jsonl, format: jsonl}}
delivery: {retry: {attempts: 3, initial: 10ms, max: 20ms}}
"""


class PartnerSink:
    """A partner that rejects chosen orders for good and fails others a few times first."""

    def __init__(self, name: str = "erp") -> None:
        self.name = name
        self.reject: set[int] = set()
        self.flaky: dict[int, int] = {}
        self.delivered: list[int] = []

    async def open(self) -> None:
        return None

    async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = []
        for envelope in batch:
            order = int(envelope.payload["id"])
            if order in self.reject:
                outcomes.append(PermanentError(f"HTTP 422: order {order} rejected"))
            elif self.flaky.get(order, 0) > 0:
                self.flaky[order] -= 1
                outcomes.append(TransientError("HTTP 503"))
            else:
                self.delivered.append(order)
                outcomes.append(None)
        return outcomes

    async def close(self) -> None:
        return None


def write_flow(project: Path, text: str, name: str) -> Flow:
    path = project / "flows" / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return load_flow(path)


def open_project_store(project: Path) -> Store:
    return store_from_url(load_project(project).store_url())


def report_of(store: Store, **kwargs: object) -> KpiReport:
    async def main() -> KpiReport:
        await store.open()
        try:
            return await collect_kpis(store, **kwargs)  # type: ignore[arg-type]
        finally:
            await store.close()

    return anyio.run(main)


def known_history(project: Path) -> tuple[PartnerSink, float]:
    """Ten orders: two rejected, one flaky (delivered on its third attempt), one filtered out;
    then the dead letters are replayed ~0.3 s after they failed (to the flow's own sink).
    Returns the sink and the seconds the whole history took."""
    flow = write_flow(project, ORDERS, "orders")
    sink = PartnerSink()
    sink.reject = {3, 7}
    sink.flaky = {5: 2}
    orders = [{"id": i, "total": 0 if i == 9 else 10 + i} for i in range(10)]

    async def main() -> float:
        store = open_project_store(project)
        await store.open()
        started = time.monotonic()
        try:
            summary = await run_flow_async(
                flow, store=store, source=ListSource(orders), sinks={"erp": sink}
            )
            assert summary.dead_lettered == 2 and summary.filtered == 1
            await anyio.sleep(0.3)
            report = await replay_async(
                load_project(project), store, DeadLetterQuery(flow="orders"), flows=[flow]
            )
            assert report.selected == 2
            return time.monotonic() - started
        finally:
            await store.close()

    return sink, anyio.run(main)


def test_kpis_of_a_known_history_are_exact(project: Path) -> None:
    sink, longest = known_history(project)
    assert sorted(sink.delivered) == [0, 1, 2, 4, 5, 6, 8]
    replayed = (project / "out" / "erp.jsonl").read_text().splitlines()  # the declared sink
    assert len(replayed) == 2
    report = report_of(open_project_store(project), flow="orders")
    (orders,) = report.flows
    # 10 messages; a replay keeps its message id, so the 2 replayed ones are not counted
    # again, and success is first-pass success (never dead-lettered)
    assert orders.messages == 10 and orders.succeeded == 8
    assert orders.success_rate == pytest.approx(8 / 10)
    assert (orders.delivered, orders.filtered, orders.duplicates) == (9, 1, 0)
    assert orders.dead_lettered == 2
    assert orders.dlq_depth == 0  # both replayed
    assert (orders.parked, orders.parked_now) == (0, 0)
    assert orders.retries == 2  # order 5: delivered on attempt 3
    assert orders.replayed == 2
    assert orders.mean_time_to_replay_s is not None
    assert 0.3 <= orders.mean_time_to_replay_s <= longest
    latency = orders.latency_ms
    assert latency["count"] == 9
    assert latency["p50"] is not None and latency["p95"] is not None
    assert latency["p99"] is not None and latency["mean"] is not None
    assert 0 <= latency["p50"] <= latency["p95"] <= latency["p99"]
    assert report.total.messages == 10 and report.total.dlq_depth == 0


def test_dead_letters_count_until_they_are_replayed(project: Path) -> None:
    flow = write_flow(project, ORDERS, "orders")
    sink = PartnerSink()
    sink.reject = {1}

    async def main() -> None:
        store = open_project_store(project)
        await store.open()
        try:
            await run_flow_async(
                flow,
                store=store,
                source=ListSource([{"id": i, "total": 5} for i in range(4)]),
                sinks={"erp": sink},
            )
            report = await collect_kpis(store)
        finally:
            await store.close()
        (orders,) = report.flows
        assert (orders.messages, orders.succeeded, orders.success_rate) == (4, 3, 0.75)
        assert (orders.dead_lettered, orders.dlq_depth) == (1, 1)
        assert orders.replayed == 0 and orders.mean_time_to_replay_s is None

    anyio.run(main)


def test_the_window_bounds_what_is_counted(project: Path) -> None:
    known_history(project)
    past = datetime.now(UTC) - timedelta(days=3)
    report = report_of(open_project_store(project), since=past - timedelta(days=1), until=past)
    assert report.flows == []  # nothing happened then, and nothing is open now
    assert report.total.messages == 0 and report.total.latency_ms["count"] == 0


def test_an_empty_store_reports_zeros(project: Path) -> None:
    report = report_of(open_project_store(project))
    assert report.flows == []
    total = report.total.as_dict()
    assert total["messages"] == total["dead_lettered"] == total["dlq_depth"] == 0
    assert total["retries"] == total["replayed"] == 0
    assert total["success_rate"] is None
    named = report_of(open_project_store(project), flow="orders")
    assert [f.as_dict()["messages"] for f in named.flows] == [0]


@given(amount=st.integers(min_value=0, max_value=10_000), unit=st.sampled_from("smhdw"))
def test_durations_count_back_from_now(amount: int, unit: str) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    assert parse_moment(f"{amount}{unit}", now) == now - timedelta(seconds=amount * seconds)


def test_iso_times_are_taken_as_utc_and_nonsense_is_refused() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert parse_moment("2029-12-31T10:00:00", now) == datetime(2029, 12, 31, 10, tzinfo=UTC)
    assert parse_moment("2029-12-31", now) == datetime(2029, 12, 31, tzinfo=UTC)
    with pytest.raises(ValueError, match="duration"):
        parse_moment("yesterday", now)
