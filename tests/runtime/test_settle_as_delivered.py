"""Each message is recorded and settled as its sink confirms it, not when its batch is done.

A sink that sends one request per message (it has a ``concurrency`` option) holds one message
back; the others must be recorded (idempotency key in the store) and acknowledged meanwhile,
so a crash re-sends at most what is in flight, and a slow message never delays the rest.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from dovetail.api import run_flow_async
from dovetail.config.loader import load_flow
from dovetail.config.model import Flow
from dovetail.core.envelope import Envelope
from dovetail.errors import TransientError
from dovetail.store.sqlite import SqliteStore
from dovetail.testing.fakes import CaptureSink, ListSource

FLOW = """
flow: orders
source: {{file: {{path: in/*.jsonl, format: jsonl}}}}
sink: {{file: {{path: out/a.jsonl, format: jsonl}}}}
delivery: {{idempotency_key: id, retry: {{attempts: 5, initial: 10ms, max: 10s}}}}
runtime: {{batch_size: 50, workers: 1{runtime}}}
"""


def write_flow(project: Path, runtime: str = "") -> Flow:
    path = project / "flows" / "orders.yaml"
    path.write_text(FLOW.format(runtime=runtime), encoding="utf-8")
    return load_flow(path)


@dataclass
class _Concurrency:
    concurrency: int


class GatedSink(CaptureSink):
    """One request per message (``config.concurrency``); message ``held`` waits for ``gate``."""

    def __init__(self, held: int, concurrency: int = 4) -> None:
        super().__init__("sink")
        self.config = _Concurrency(concurrency)
        self.held = held
        self.gate = anyio.Event()
        self.batch_sizes: list[int] = []

    async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
        self.batch_sizes.append(len(batch))
        if any(e.payload["id"] == self.held for e in batch):
            await self.gate.wait()
        return await super().write(batch)


class CountingSource(ListSource):
    """A list source whose ``reached`` is set once ``watch_for`` messages are acked."""

    def __init__(self, items: list[dict[str, int]], *, batch_size: int, watch_for: int) -> None:
        super().__init__(items, batch_size=batch_size)
        self.watch_for = watch_for
        self.reached = anyio.Event()

    async def _ack(self) -> None:
        await super()._ack()
        if self.acked >= self.watch_for:
            self.reached.set()


def test_confirmed_messages_are_recorded_and_acked_while_one_is_still_in_flight(
    project: Path,
) -> None:
    flow = write_flow(project)
    source = CountingSource([{"id": i} for i in range(20)], batch_size=20, watch_for=19)
    sink = GatedSink(held=0)
    seen: dict[str, object] = {}

    async def main() -> None:
        store = SqliteStore(project / "s.db")
        await store.open()
        try:
            async with anyio.create_task_group() as group:

                async def watch() -> None:
                    with anyio.move_on_after(10):
                        await source.reached.wait()
                    seen["acked"] = source.acked
                    keys = [str(i) for i in range(20)]
                    seen["recorded"] = await store.delivered_keys("orders", "sink", keys)
                    sink.gate.set()

                group.start_soon(watch)
                await run_flow_async(flow, store=store, source=source, sinks={"sink": sink})
        finally:
            await store.close()

    anyio.run(main)
    # while message 0 was in flight, the 19 others were recorded and acknowledged
    assert seen["acked"] == 19
    assert seen["recorded"] == {str(i) for i in range(1, 20)}
    assert set(sink.batch_sizes) == {1}  # one write per message
    assert source.acked == 20


class AlwaysBusySink(CaptureSink):
    """Answers ``busy`` with a transient failure asking to come back in 30 s."""

    def __init__(self, busy: int) -> None:
        super().__init__("sink")
        self.config = _Concurrency(4)
        self.busy = busy

    async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
        if any(e.payload["id"] == self.busy for e in batch):
            return [TransientError("HTTP 503 from POST /orders", retry_after=3.0)]
        return await super().write(batch)


@pytest.mark.parametrize("batch_timeout", ["1s"])
def test_a_retry_past_the_batch_timeout_is_parked_instead_of_holding_the_batch(
    project: Path, batch_timeout: str
) -> None:
    # a 3 s wait is below park_after (10 s): without batch_timeout it would be waited in place
    flow = write_flow(project, f", batch_timeout: {batch_timeout}")
    source = ListSource([{"id": i} for i in range(10)], batch_size=10)
    sink = AlwaysBusySink(busy=3)

    async def main() -> float:
        store = SqliteStore(project / "s.db")
        await store.open()
        try:
            began = time.perf_counter()
            summary = await run_flow_async(flow, store=store, source=source, sinks={"sink": sink})
            took = time.perf_counter() - began
            parked = await store.parked("orders")
        finally:
            await store.close()
        assert summary.delivered == {"sink": 9}
        assert summary.parked == 1
        assert [m.message_id for m in parked] and parked[0].attempt == 1
        return took

    took = anyio.run(main)
    assert took < 2.5, f"the batch waited {took:.1f}s for a retry"
    assert source.acked == 10
