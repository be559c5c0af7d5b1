"""Long retry waits are parked in the store; the retry pump sends them again when due."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dovetail.api import run_flow_async
from dovetail.config.loader import load_flow
from dovetail.config.model import Flow
from dovetail.core.envelope import Envelope
from dovetail.errors import RateLimitedError, TransientError
from dovetail.runtime.runner import FlowRunner, RunSummary
from dovetail.store.base import DeadLetterQuery, ParkedMessage
from dovetail.store.sqlite import SqliteStore
from dovetail.testing.fakes import CaptureSink, ListSource

FLOW = """
flow: orders
source: {file: {path: in/*.jsonl, format: jsonl}}
sink: {file: {path: out/a.jsonl, format: jsonl}}
delivery:
  idempotency_key: id
  retry: {attempts: 4, initial: 10ms, max: 5m, park_after: 10s}
"""


class ScriptedSink(CaptureSink):
    """Answers 429 with ``Retry-After: 30`` to the first ``refusals[id]`` attempts of a message."""

    def __init__(self, refusals: dict[int, int]) -> None:
        super().__init__("sink")
        self.refusals = dict(refusals)
        self.attempts: Counter[int] = Counter()

    async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = []
        for envelope in batch:
            key = envelope.payload["id"]
            self.attempts[key] += 1
            if self.refusals.get(key, 0) >= self.attempts[key]:
                outcomes.append(RateLimitedError("HTTP 429 from partner", retry_after=30.0))
            else:
                self.received.append(envelope.payload)
                outcomes.append(None)
        await anyio.lowlevel.checkpoint()
        return outcomes


def write_flow(project: Path, text: str = FLOW) -> Flow:
    path = project / "flows" / "flow.yaml"
    path.write_text(text, encoding="utf-8")
    return load_flow(path)


def make_due(db: Path) -> None:
    """Move every parked message's next attempt into the past (time passes)."""
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE dovetail_parked SET next_attempt_at = next_attempt_at - 3600")


async def run_once(
    flow: Flow, db: Path, items: list[dict[str, Any]], sink: CaptureSink
) -> tuple[RunSummary, list[ParkedMessage]]:
    store = SqliteStore(db)
    await store.open()
    try:
        summary = await run_flow_async(
            flow, store=store, source=ListSource(items, batch_size=3), sinks={"sink": sink}
        )
        return summary, await store.parked("orders")
    finally:
        await store.close()


def test_a_long_wait_is_parked_and_the_rest_keep_flowing(project: Path) -> None:
    flow = write_flow(project)
    sink = ScriptedSink({2: 1})
    items = [{"id": i} for i in range(1, 7)]
    db = project / "s.db"

    summary, parked = anyio.run(run_once, flow, db, items, sink)
    assert sorted(p["id"] for p in sink.received) == [1, 3, 4, 5, 6]
    assert summary.parked == 1
    assert summary.dead_lettered == 0
    (message,) = parked
    assert message.payload == {"id": 2}
    assert message.attempt == 1
    assert message.reason == "HTTP 429 from partner"
    waited = (message.next_attempt_at - message.last_failed_at).total_seconds()  # type: ignore[operator]
    assert 29.0 <= waited <= 31.0  # Retry-After is the floor of the wait

    # not due yet: a rerun leaves it parked
    summary, parked = anyio.run(run_once, flow, db, [], sink)
    assert summary.redriven == 0
    assert len(parked) == 1

    make_due(db)
    summary, parked = anyio.run(run_once, flow, db, [], sink)
    assert summary.redriven == 1
    assert summary.delivered["sink"] == 1
    assert parked == []
    assert sorted(p["id"] for p in sink.received) == [1, 2, 3, 4, 5, 6]
    assert sink.attempts[2] == 2


def test_attempts_continue_across_parking_and_end_in_a_dead_letter(project: Path) -> None:
    flow = write_flow(project)
    sink = ScriptedSink({7: 99})
    db = project / "s.db"

    anyio.run(run_once, flow, db, [{"id": 7}], sink)
    for _ in range(3):
        make_due(db)
        anyio.run(run_once, flow, db, [], sink)
    assert sink.attempts[7] == 4  # attempts: 4 in all, across three re-drives

    async def letters() -> list[Any]:
        store = SqliteStore(db)
        await store.open()
        try:
            return [
                await store.dead_letters(DeadLetterQuery(flow="orders")),
                await store.parked("orders"),
                await store.journal_for(
                    (await store.dead_letters(DeadLetterQuery(flow="orders")))[0].message_id
                ),
            ]
        finally:
            await store.close()

    dead, parked, journal = anyio.run(letters)
    assert parked == []
    (letter,) = dead
    assert letter.attempt == 4
    assert letter.payload == {"id": 7}
    assert letter.step == "sink:sink"
    assert len(letter.history) == 4  # three parked attempts and the last one
    events = [event.event for event in journal]
    assert events.count("parked") == 3
    assert events[-1] == "dead_lettered"


def test_same_key_messages_queue_behind_a_parked_one(project: Path) -> None:
    flow = write_flow(
        project,
        FLOW.replace("  idempotency_key: id\n", "  idempotency_key: id\n  ordering: {key: cust}\n"),
    )
    sink = ScriptedSink({1: 1})
    db = project / "s.db"
    first = [{"id": 1, "cust": "K"}, {"id": 2, "cust": "L"}]
    later = [{"id": 3, "cust": "K"}, {"id": 4, "cust": "L"}, {"id": 5, "cust": "K"}]

    summary, parked = anyio.run(run_once, flow, db, first, sink)
    assert [p["id"] for p in sink.received] == [2]
    summary, parked = anyio.run(run_once, flow, db, later, sink)
    # other keys are not held up; K's later messages wait behind message 1
    assert [p["id"] for p in sink.received] == [2, 4]
    assert [m.payload["id"] for m in parked] == [1, 3, 5]
    assert [m.attempt for m in parked] == [1, 0, 0]

    make_due(db)
    summary, parked = anyio.run(run_once, flow, db, [], sink)
    assert parked == []
    assert [p["id"] for p in sink.received if p["cust"] == "K"] == [1, 3, 5]
    assert summary.redriven == 3


def test_a_duplicate_of_a_parked_key_is_not_delivered_twice(project: Path) -> None:
    flow = write_flow(project)
    sink = ScriptedSink({1: 1})
    db = project / "s.db"

    anyio.run(run_once, flow, db, [{"id": 1}], sink)
    summary, parked = anyio.run(run_once, flow, db, [{"id": 1}, {"id": 2}], sink)
    assert [p["id"] for p in sink.received] == [2]
    assert len(parked) == 2

    make_due(db)
    summary, parked = anyio.run(run_once, flow, db, [], sink)
    assert parked == []
    assert [p["id"] for p in sink.received] == [2, 1]
    assert summary.duplicates == 1


def test_without_park_after_the_wait_happens_in_place(project: Path) -> None:
    flow = write_flow(
        project,
        FLOW.replace("park_after: 10s", "park_after: null").replace("max: 5m", "max: 50ms"),
    )

    class Flaky(CaptureSink):
        def __init__(self) -> None:
            super().__init__("sink")
            self.calls = 0

        async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
            self.calls += 1
            if self.calls == 1:
                return [TransientError("HTTP 503")] * len(batch)
            return await super().write(batch)

    sink = Flaky()
    summary, parked = anyio.run(run_once, flow, project / "s.db", [{"id": 1}], sink)
    assert summary.parked == 0
    assert parked == []
    assert summary.delivered["sink"] == 1


@pytest.mark.timeout(30)
def test_the_pump_re_sends_while_the_flow_keeps_running(project: Path) -> None:
    flow = write_flow(
        project, FLOW.replace("park_after: 10s", "park_after: 100ms").replace("max: 5m", "max: 1s")
    )

    class Slow(CaptureSink):
        """Refuses message 1 once with Retry-After 0.5 s."""

        def __init__(self) -> None:
            super().__init__("sink")
            self.refused = False
            self.both = anyio.Event()

        async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
            outcomes: list[BaseException | None] = []
            for envelope in batch:
                if envelope.payload["id"] == 1 and not self.refused:
                    self.refused = True
                    outcomes.append(RateLimitedError("HTTP 429", retry_after=0.5))
                else:
                    self.received.append(envelope.payload)
                    outcomes.append(None)
            if len(self.received) >= 2:
                self.both.set()
            return outcomes

    class Endless(ListSource):
        async def run(self, emit: Any) -> None:
            await super().run(emit)
            await anyio.sleep_forever()

    sink = Slow()

    async def main() -> RunSummary:
        store = SqliteStore(project / "s.db")
        await store.open()
        runners: list[FlowRunner] = []
        try:
            async with anyio.create_task_group() as group:

                async def run() -> None:
                    await run_flow_async(
                        flow,
                        store=store,
                        once=False,
                        source=Endless([{"id": 1}, {"id": 2}]),
                        sinks={"sink": sink},
                        runner_ready=runners,
                    )

                group.start_soon(run)
                with anyio.fail_after(20):
                    await sink.both.wait()
                runners[0].stop()
            return runners[0].summary
        finally:
            await store.close()

    summary = anyio.run(main)
    assert [p["id"] for p in sink.received] == [2, 1]
    assert summary.parked == 1
    assert summary.redriven == 1


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    keys=st.lists(st.sampled_from("KLM"), min_size=1, max_size=12),
    refusals=st.lists(st.integers(min_value=0, max_value=2), min_size=12, max_size=12),
)
def test_parked_retries_keep_key_order_and_deliver_each_message_once(
    tmp_path_factory: pytest.TempPathFactory, keys: list[str], refusals: list[int]
) -> None:
    project = tmp_path_factory.mktemp("p")
    (project / "flows").mkdir()
    (project / "dovetail.yaml").write_text("project: test\n", encoding="utf-8")
    flow = write_flow(
        project,
        FLOW.replace("  idempotency_key: id\n", "  idempotency_key: id\n  ordering: {key: cust}\n"),
    )
    items = [{"id": i, "cust": key} for i, key in enumerate(keys)]
    sink = ScriptedSink({i: refusals[i] for i in range(len(items))})
    db = project / "s.db"
    half = len(items) // 2
    anyio.run(run_once, flow, db, items[:half], sink)
    anyio.run(run_once, flow, db, items[half:], sink)
    for _ in range(30):  # each round gives every key's oldest message one more attempt
        make_due(db)
        _, parked = anyio.run(run_once, flow, db, [], sink)
        if not parked:
            break
    assert sorted(p["id"] for p in sink.received) == list(range(len(items)))
    for key in set(keys):
        got = [p["id"] for p in sink.received if p["cust"] == key]
        assert got == sorted(got), key
