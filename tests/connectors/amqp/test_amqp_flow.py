"""amqp flows through the real runner: ack after settle, redelivery, poison messages, tracing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
from amqp_support import AMQP_URL, broker

from dovetail.api import run_flow_async
from dovetail.config.loader import load_flow
from dovetail.config.model import Flow
from dovetail.connectors.amqp.source import AmqpSource
from dovetail.core.envelope import Envelope
from dovetail.delivery.clock import FakeClock
from dovetail.errors import TransientError
from dovetail.runtime.runner import FlowRunner
from dovetail.store.base import DeadLetterQuery
from dovetail.store.sqlite import SqliteStore
from dovetail.testing.components import build_component
from dovetail.testing.fakes import CaptureSink

Names = Callable[[str], str]


def write_flow(project: Path, queue: str, sink: str = "capture: {}", extra: str = "") -> Flow:
    text = (
        "flow: amqp-orders\n"
        f"source:\n  amqp: {{url: '{AMQP_URL}', queue: {queue}, batch_size: 10,"
        " batch_timeout: 50ms}\n"
        f"sink:\n  {sink}\n"
        "delivery: {idempotency_key: id, retry: {attempts: 4, initial: 10ms, max: 20ms}}\n"
        f"{extra}"
    )
    path = project / "flows" / "amqp-orders.yaml"
    path.write_text(text.replace("capture: {}", "file: {path: out/x.jsonl}"), encoding="utf-8")
    return load_flow(path)


def source_for(project: Path, queue: str, *, once: bool) -> AmqpSource:
    snippet = f"amqp: {{url: '{AMQP_URL}', queue: {queue}, batch_size: 10, batch_timeout: 50ms}}"
    source = build_component("source", snippet, project, flow="amqp-orders", once=once)
    assert isinstance(source, AmqpSource)
    return source


class FlakySink(CaptureSink):
    """Fails its first write transiently; notes what the source had acked at that moment."""

    def __init__(self, source: AmqpSource) -> None:
        super().__init__("capture")
        self.source = source
        self.acked_while_failing: int | None = None

    async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
        if self.acked_while_failing is None:
            self.acked_while_failing = self.source.acked
            return [TransientError("partner unavailable")] * len(batch)
        return await super().write(batch)


def test_a_message_is_acked_only_once_the_sink_delivered_it(project: Path, names: Names) -> None:
    queue = names("flaky")
    flow = write_flow(project, queue)
    source = source_for(project, queue, once=True)
    sink = FlakySink(source)

    async def main() -> None:
        async with broker() as client:
            await client.declare(queue)
            await client.publish(queue, [{"id": n} for n in range(3)])
            store = SqliteStore(project / "state.db")
            await store.open()
            try:
                summary = await run_flow_async(
                    flow, store=store, source=source, sinks={"sink": sink}, clock=FakeClock()
                )
            finally:
                await store.close()
            assert summary.retries >= 1 and summary.delivered_total == 3
            assert (await client.state(queue)).ready == 0

    anyio.run(main)
    assert sink.acked_while_failing == 0, "nothing was acked while the sink was failing"
    assert source.acked == 3
    assert sorted(p["id"] for p in sink.received) == [0, 1, 2]


class StuckSink(CaptureSink):
    """Never finishes a write: the process is stopped while messages are in flight."""

    def __init__(self) -> None:
        super().__init__("capture")
        self.writing = anyio.Event()

    async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
        self.writing.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


def test_messages_not_settled_when_the_flow_stops_are_delivered_again(
    project: Path, names: Names
) -> None:
    queue = names("stopped")
    flow = write_flow(project, queue, extra="runtime: {drain_timeout: 100ms}\n")

    async def main() -> None:
        async with broker() as client:
            await client.declare(queue)
            await client.publish(queue, [{"id": n} for n in range(4)])
            store = SqliteStore(project / "state.db")
            await store.open()
            try:
                stuck, runners = StuckSink(), list[FlowRunner]()
                async with anyio.create_task_group() as group:
                    group.start_soon(
                        lambda: run_flow_async(
                            flow,
                            store=store,
                            once=False,
                            sinks={"sink": stuck},
                            runner_ready=runners,
                        )
                    )
                    with anyio.fail_after(10):
                        await stuck.writing.wait()
                    assert (await client.state(queue)).ready == 0
                    runners[0].stop()
                assert (await client.state(queue)).ready == 4, "returned to the queue"

                capture = CaptureSink("capture")
                summary = await run_flow_async(
                    flow, store=store, once=True, sinks={"sink": capture}
                )
                assert summary.delivered_total == 4
                assert sorted(p["id"] for p in capture.received) == [0, 1, 2, 3]
            finally:
                await store.close()
            assert (await client.state(queue)).ready == 0

    anyio.run(main)


def test_a_poison_message_is_dead_lettered_then_acked(project: Path, names: Names) -> None:
    queue = names("poison")
    flow = write_flow(project, queue)

    async def main() -> None:
        async with broker() as client:
            await client.declare(queue)
            await client.publish(queue, [b"{not json", {"id": 1}], message_id="M-7")
            store = SqliteStore(project / "state.db")
            await store.open()
            try:
                capture = CaptureSink("capture")
                summary = await run_flow_async(
                    flow, store=store, once=True, sinks={"sink": capture}
                )
                (letter,) = await store.dead_letters(DeadLetterQuery(flow="amqp-orders"))
            finally:
                await store.close()
            assert summary.dead_lettered == 1 and capture.received == [{"id": 1}]
            assert letter.step == "source"
            assert letter.reason.startswith("invalid JSON: ")
            assert letter.payload == "{not json"
            assert letter.source_position is not None
            assert letter.source_position["kind"] == "amqp"
            assert letter.headers["message-id"] == "M-7"
            state = await client.state(queue)
            assert state.ready == 0, "acked: not delivered again"

    anyio.run(main)


def test_traceparent_follows_the_message_from_queue_to_queue(project: Path, names: Names) -> None:
    inbound, outbound = names("in"), names("out")
    flow = write_flow(
        project, inbound, sink=f"amqp: {{url: '{AMQP_URL}', routing_key: {outbound}}}"
    )
    trace_id = "0af7651916cd43dd8448eb211c80319c"

    async def main() -> None:
        async with broker() as client:
            await client.declare(inbound)
            await client.declare(outbound)
            traceparent = f"00-{trace_id}-b7ad6b7169203331-01"
            await client.publish(inbound, [{"id": "A-1"}], headers={"traceparent": traceparent})
            store = SqliteStore(project / "state.db")
            await store.open()
            try:
                summary = await run_flow_async(flow, store=store, once=True)
            finally:
                await store.close()
            assert summary.delivered_total == 1
            (message,) = await client.get_all(outbound)
            assert (await client.state(inbound)).ready == 0
        headers = message.headers
        assert isinstance(headers["traceparent"], str)
        assert headers["traceparent"].split("-")[1] == trace_id
        assert headers["traceparent"] != traceparent, "a new span of the same trace"
        assert headers["x-correlation-id"] == trace_id
        assert message.message_id == "A-1", "the idempotency key"
        assert message.body == b'{"id":"A-1"}'

    anyio.run(main)
