"""The runner's settle-then-ack discipline, built from YAML through the real registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from dovetail.api import run_flow_async
from dovetail.config.loader import load_flow
from dovetail.config.model import Flow
from dovetail.core.ack import Settlement
from dovetail.core.envelope import Envelope
from dovetail.delivery.clock import FakeClock
from dovetail.delivery.replay import ReplaySource
from dovetail.errors import PermanentError, TransientError
from dovetail.runtime.runner import FlowHalted
from dovetail.store.base import DeadLetterQuery
from dovetail.store.sqlite import SqliteStore
from dovetail.testing.fakes import CaptureSink, ListSource
from dovetail.testing.harness import run_offline


def write_flow(project: Path, text: str, name: str = "flow.yaml") -> Flow:
    path = project / "flows" / name
    path.write_text(text, encoding="utf-8")
    return load_flow(path)


BASIC = """
flow: orders
source: {file: {path: in/*.jsonl, format: jsonl}}
steps:
  - filter: total > 0
sinks:
  a: {file: {path: out/a.jsonl, format: jsonl}}
  b: {file: {path: out/b.jsonl, format: jsonl}}
delivery: {idempotency_key: id, retry: {attempts: 3, initial: 1s}}
"""


def test_every_message_is_settled_exactly_once_and_acked(project: Path) -> None:
    flow = write_flow(project, BASIC)
    source = ListSource([{"id": i, "total": i % 3} for i in range(30)], batch_size=7)
    sinks = {"a": CaptureSink("a"), "b": CaptureSink("b")}

    async def main() -> None:
        store = SqliteStore(project / "s.db")
        await store.open()
        try:
            summary = await run_flow_async(flow, store=store, source=source, sinks=dict(sinks))
        finally:
            await store.close()
        assert summary.received == 30 and summary.filtered == 10
        assert summary.delivered == {"a": 20, "b": 20}

    anyio.run(main)
    assert source.acked == 30  # filtered ones are acked too; each message once
    assert [p["id"] for p in sinks["a"].received] == [i for i in range(30) if i % 3]


def test_no_ack_until_the_settlement_is_durable(project: Path) -> None:
    flow = write_flow(project, BASIC)
    source = ListSource([{"id": 1, "total": 5}])
    acked_while_failing: list[int] = []

    class FailingStore(SqliteStore):
        failures = 2

        async def settle_batch(self, record: Any) -> list[int]:
            if self.failures:
                self.failures -= 1
                acked_while_failing.append(source.acked)
                raise OSError("disk full")
            return await super().settle_batch(record)

    async def main() -> None:
        store = FailingStore(project / "s.db")
        await store.open()
        try:
            await run_flow_async(
                flow, store=store, source=source, sinks={"a": CaptureSink()}, clock=FakeClock()
            )
        finally:
            await store.close()

    anyio.run(main)
    assert acked_while_failing == [0, 0]  # retried while the store was down, never acked
    assert source.acked == 1


def test_failures_become_dead_letters_with_their_origin(project: Path) -> None:
    flow = write_flow(
        project, BASIC.replace("  b: {file: {path: out/b.jsonl, format: jsonl}}\n", "")
    )
    sink = CaptureSink("a")
    sink.fail_with = {0: PermanentError("HTTP 422 from POST /orders: bad")}

    async def main() -> None:
        store = SqliteStore(project / "s.db")
        await store.open()
        try:
            source = ListSource([{"id": 1, "total": 2}, {"id": 2, "total": "x"}])
            summary = await run_flow_async(
                flow, store=store, source=source, sinks={"a": sink}, clock=FakeClock()
            )
            letters = await store.dead_letters(DeadLetterQuery(flow="orders"))
        finally:
            await store.close()
        assert summary.dead_lettered == 2
        by_step = {letter.step: letter for letter in letters}
        assert set(by_step) == {"filter", "sink:a"}
        assert by_step["sink:a"].reason == "HTTP 422 from POST /orders: bad"
        assert by_step["sink:a"].payload == {"id": 1, "total": 2}
        assert by_step["sink:a"].source_position == {
            "kind": "list",
            "ref": "list",
            "offset": 0,
            "line": None,
        }
        assert by_step["filter"].error_class == "MappingFailed"

    anyio.run(main)


def test_replay_delivers_once_and_marks_entries_replayed(project: Path) -> None:
    flow = write_flow(
        project, BASIC.replace("  b: {file: {path: out/b.jsonl, format: jsonl}}\n", "")
    )

    async def main() -> None:
        store = SqliteStore(project / "s.db")
        await store.open()
        try:
            flaky = CaptureSink("a")
            flaky.fail_with = {
                0: TransientError("HTTP 503"),
                1: TransientError("HTTP 503"),
                2: TransientError("HTTP 503"),
            }
            items = [{"id": i, "total": 1} for i in range(5)]
            first = await run_flow_async(
                flow, store=store, source=ListSource(items), sinks={"a": flaky}, clock=FakeClock()
            )
            assert first.dead_lettered == 5 and first.retries == 10
            letters = await store.dead_letters(DeadLetterQuery())
            fixed = CaptureSink("a")
            for _ in range(2):  # replaying twice must not deliver twice
                await run_flow_async(
                    flow, store=store, source=ReplaySource(letters), sinks={"a": fixed}
                )
            assert [p["id"] for p in fixed.received] == list(range(5))
            assert await store.dead_letters(DeadLetterQuery()) == []
            replayed = await store.dead_letters(DeadLetterQuery(status="replayed"))
            assert len(replayed) == 5
        finally:
            await store.close()

    anyio.run(main)


def test_a_message_split_into_parts_is_acked_after_its_last_part(project: Path) -> None:
    flow = write_flow(
        project,
        """
flow: split-orders
source: {file: {path: in/*.json, format: json}}
steps:
  - split: {path: lines, include: {order: id}}
sink: {file: {path: out/lines.jsonl, format: jsonl}}
delivery: {idempotency_key: id}
""",
    )
    acks: list[int] = []
    sink = CaptureSink()

    def envelope(i: int, lines: int) -> Envelope:
        async def ack() -> None:
            acks.append(i)

        return Envelope(
            payload={"id": i, "lines": [{"n": n} for n in range(lines)]}, settlement=Settlement(ack)
        )

    async def main() -> None:
        store = SqliteStore(project / "s.db")
        await store.open()
        try:
            source = ListSource([envelope(1, 3), envelope(2, 1)])
            await run_flow_async(flow, store=store, source=source, sinks={"sink": sink})
        finally:
            await store.close()

    anyio.run(main)
    assert sorted(acks) == [1, 2]
    assert [(p["order"], p["n"]) for p in sink.received] == [(1, 0), (1, 1), (1, 2), (2, 0)]
    keys = [e.headers["idempotency-key"] for e in sink.envelopes]
    assert len(set(keys)) == 4


def test_route_sends_each_message_only_to_its_sinks(project: Path) -> None:
    flow = write_flow(
        project,
        """
flow: routed
source: {file: {path: in/*.jsonl, format: jsonl}}
steps:
  - route:
      routes:
        - {when: "country = 'NL'", to: [nl]}
        - {when: "total > 100", to: [big, nl]}
      otherwise: [rest]
      mode: first
sinks:
  nl: {file: {path: out/nl.jsonl, format: jsonl}}
  big: {file: {path: out/big.jsonl, format: jsonl}}
  rest: {file: {path: out/rest.jsonl, format: jsonl}}
""",
    )
    messages = [
        {"id": 1, "country": "NL", "total": 500},
        {"id": 2, "country": "DE", "total": 500},
        {"id": 3, "country": "DE", "total": 5},
    ]
    run = anyio.run(lambda: run_offline(flow, messages=messages))
    ids = {name: [p["id"] for p in payloads] for name, payloads in run.delivered.items()}
    assert ids == {"nl": [1, 2], "big": [2], "rest": [3]}


def test_dead_letter_off_halts_the_flow_without_acking(project: Path) -> None:
    flow = write_flow(
        project,
        BASIC.replace(
            "delivery: {idempotency_key: id, retry: {attempts: 3, initial: 1s}}",
            "delivery: {dead_letter: false}",
        ),
    )
    source = ListSource([{"id": 1, "total": "oops"}])

    async def main() -> None:
        store = SqliteStore(project / "s.db")
        await store.open()
        try:
            await run_flow_async(
                flow, store=store, source=source, sinks={"a": CaptureSink(), "b": CaptureSink()}
            )
        finally:
            await store.close()

    with pytest.raises(FlowHalted, match="dead_letter is off"):
        anyio.run(main)
    assert source.acked == 0


class SlowSink(CaptureSink):
    async def write(self, batch):  # type: ignore[no-untyped-def]
        await anyio.sleep(0.05)
        return await super().write(batch)


def test_concurrent_batches_never_deliver_one_key_twice(project: Path) -> None:
    flow = write_flow(
        project,
        BASIC.replace("  b: {file: {path: out/b.jsonl, format: jsonl}}\n", "")
        + "runtime: {batch_size: 1, workers: 4}\n",
    )
    sink = SlowSink("a")
    items = [{"id": i % 3, "total": 1} for i in range(12)]

    async def main() -> None:
        store = SqliteStore(project / "s.db")
        await store.open()
        try:
            source = ListSource(items, batch_size=1)
            summary = await run_flow_async(flow, store=store, source=source, sinks={"a": sink})
        finally:
            await store.close()
        assert summary.duplicates == 9

    anyio.run(main)
    assert sorted(p["id"] for p in sink.received) == [0, 1, 2]


def test_a_halted_batch_still_records_what_it_delivered(project: Path) -> None:
    flow = write_flow(
        project,
        BASIC.replace("  b: {file: {path: out/b.jsonl, format: jsonl}}\n", "")
        .replace("dead_letter", "dead_letter_unused")
        .replace("retry: {attempts: 3, initial: 1s}}", "dead_letter: false}"),
    )
    items = [{"id": 1, "total": 5}, {"id": 2, "total": "bad"}]

    async def main() -> list[object]:
        store = SqliteStore(project / "s.db")
        await store.open()
        sink = CaptureSink("a")
        try:
            for _ in range(2):
                with pytest.raises(FlowHalted):
                    await run_flow_async(
                        flow, store=store, source=ListSource(items), sinks={"a": sink}
                    )
        finally:
            await store.close()
        return sink.received

    received = anyio.run(main)
    assert received == [{"id": 1, "total": 5}]  # the rerun skips the recorded key


class FlakySink(CaptureSink):
    """Fails a seeded third of the messages transiently, in any write."""

    def __init__(self, seed: int) -> None:
        super().__init__("a")
        import random

        self.rng = random.Random(seed)

    async def write(self, batch):  # type: ignore[no-untyped-def]
        outcomes: list[BaseException | None] = []
        for envelope in batch:
            if self.rng.random() < 0.33:
                outcomes.append(TransientError("HTTP 503"))
            else:
                self.received.append(envelope.payload)
                outcomes.append(None)
        await anyio.lowlevel.checkpoint()
        return outcomes


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_same_key_messages_arrive_in_source_order_across_retries(project: Path, seed: int) -> None:
    flow = write_flow(
        project,
        BASIC.replace("  b: {file: {path: out/b.jsonl, format: jsonl}}\n", "").replace(
            "delivery: {idempotency_key: id, retry: {attempts: 3, initial: 1s}}",
            "delivery: {idempotency_key: id, retry: {attempts: 50, initial: 10ms, max: 10ms},"
            " ordering: {key: customer}}\nruntime: {batch_size: 7, workers: 3}",
        ),
    )
    items = [{"id": i, "customer": f"c{i % 5}", "total": 1} for i in range(200)]
    sink = FlakySink(seed)

    async def main() -> None:
        store = SqliteStore(project / "s.db")
        await store.open()
        try:
            source = ListSource(items, batch_size=7)
            summary = await run_flow_async(
                flow, store=store, source=source, sinks={"a": sink}, clock=FakeClock()
            )
        finally:
            await store.close()
        assert summary.retries > 0
        assert summary.dead_lettered == 0

    anyio.run(main)
    for customer in {item["customer"] for item in items}:
        got = [p["id"] for p in sink.received if p["customer"] == customer]
        assert got == sorted(got), customer
    assert sorted(p["id"] for p in sink.received) == list(range(200))


def test_stop_drains_within_the_deadline_and_leaves_the_rest_unacked(project: Path) -> None:
    flow = write_flow(
        project,
        BASIC.replace("  b: {file: {path: out/b.jsonl, format: jsonl}}\n", "")
        + "runtime: {batch_size: 1, workers: 1, drain_timeout: 200ms}\n",
    )

    stuck = anyio.Event()

    class StuckSink(CaptureSink):
        async def write(self, batch):  # type: ignore[no-untyped-def]
            if batch[0].payload["id"] >= 2:
                stuck.set()
                await anyio.sleep(60)
            return await super().write(batch)

    source = ListSource([{"id": i, "total": 1} for i in range(5)], batch_size=1)
    sink = StuckSink("a")

    async def main() -> float:
        store = SqliteStore(project / "s.db")
        await store.open()
        runners: list[Any] = []
        try:
            async with anyio.create_task_group() as group:

                async def stop_soon() -> None:
                    await stuck.wait()
                    runners[0].stop()

                group.start_soon(stop_soon)
                started = anyio.current_time()
                await run_flow_async(
                    flow, store=store, source=source, sinks={"a": sink}, runner_ready=runners
                )
                return anyio.current_time() - started
        finally:
            await store.close()

    elapsed = anyio.run(main)
    assert elapsed < 5
    assert [p["id"] for p in sink.received] == [0, 1]
    assert source.acked == 2  # the stuck message was never acknowledged


def test_idempotency_keys_past_retention_are_forgotten(project: Path) -> None:
    import sqlite3
    from datetime import UTC, datetime, timedelta

    from dovetail.store.base import BatchRecord, Delivery

    flow = write_flow(
        project,
        BASIC.replace("  b: {file: {path: out/b.jsonl, format: jsonl}}\n", "").replace(
            "retry: {attempts: 3, initial: 1s}}", "idempotency_retention: 1h}"
        ),
    )

    async def main() -> list[object]:
        store = SqliteStore(project / "s.db")
        await store.open()
        sink = CaptureSink("a")
        try:
            await store.settle_batch(
                BatchRecord(flow="orders", deliveries=[Delivery("a", "1", "m")])
            )
            assert await store.forget_deliveries(datetime.now(UTC) - timedelta(hours=2)) == 0
            fresh = await run_flow_async(
                flow, store=store, source=ListSource([{"id": 1, "total": 1}]), sinks={"a": sink}
            )
            assert fresh.duplicates == 1  # within retention: still skipped
            with sqlite3.connect(project / "s.db") as db:  # age the key past the retention
                db.execute("UPDATE dovetail_deliveries SET delivered_at = delivered_at - 7200")
            await run_flow_async(
                flow, store=store, source=ListSource([{"id": 1, "total": 1}]), sinks={"a": sink}
            )
        finally:
            await store.close()
        return sink.received

    assert anyio.run(main) == [{"id": 1, "total": 1}]
