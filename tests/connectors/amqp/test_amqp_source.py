"""The amqp source against a real RabbitMQ: ack after settle, prefetch, declaration, sharing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from amqp_support import AMQP_URL, broker, eventually

from dovetail.connectors.amqp.source import AmqpSource
from dovetail.core.envelope import Envelope
from dovetail.errors import PermanentError, TransientError
from dovetail.testing.components import build_component

Names = Callable[[str], str]


def make_source(tmp_path: Path, options: str, *, once: bool) -> AmqpSource:
    source = build_component(
        "source", f"amqp: {{url: '{AMQP_URL}', {options}}}", tmp_path, once=once
    )
    assert isinstance(source, AmqpSource)
    return source


async def read_once(source: AmqpSource) -> list[Envelope]:
    emitted: list[Envelope] = []

    async def emit(batch: list[Envelope]) -> None:
        emitted.extend(batch)

    await source.open()
    with anyio.fail_after(10):
        await source.run(emit)
    return emitted


async def read_and_close(source: AmqpSource) -> list[Envelope]:
    """Read in once mode and close without settling (the broker keeps the messages)."""
    try:
        return await read_once(source)
    finally:
        await source.close()


class Consumer:
    """A source running in the background, recording its batches."""

    def __init__(self, source: AmqpSource, *, settle: bool) -> None:
        self.source = source
        self.settle = settle
        self.batches: list[list[Envelope]] = []
        self._more = anyio.Event()

    @property
    def emitted(self) -> list[Envelope]:
        return [envelope for batch in self.batches for envelope in batch]

    async def emit(self, batch: list[Envelope]) -> None:
        if self.settle:
            for envelope in batch:
                await envelope.settlement.settle()
        self.batches.append(batch)
        self._more.set()
        self._more = anyio.Event()

    async def wait_for(self, count: int) -> None:
        with anyio.fail_after(10):
            while len(self.emitted) < count:
                await self._more.wait()


@asynccontextmanager
async def consuming(source: AmqpSource, *, settle: bool = False) -> AsyncIterator[Consumer]:
    consumer = Consumer(source, settle=settle)
    await source.open()
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(source.run, consumer.emit)
            yield consumer
            group.cancel_scope.cancel()
    finally:
        await source.close()


def test_once_emits_the_ready_messages_and_acks_only_settled_ones(
    tmp_path: Path, names: Names
) -> None:
    queue = names("once")

    async def main() -> None:
        async with broker() as client:
            await client.declare(queue)
            await client.publish(queue, [{"n": n} for n in range(5)])
            source = make_source(tmp_path, f"queue: {queue}, batch_size: 2", once=True)
            emitted = await read_once(source)
            assert [e.payload for e in emitted] == [{"n": n} for n in range(5)]
            assert (await client.state(queue)).ready == 0, "held unacknowledged by the source"
            for envelope in emitted[:2]:
                await envelope.settlement.settle()
            await source.close()  # stopped before the other three were settled
            assert source.acked == 2

            async def three_back() -> bool:
                return (await client.state(queue)).ready == 3

            await eventually(three_back)

            again = make_source(tmp_path, f"queue: {queue}", once=True)
            redelivered = await read_once(again)
            assert [e.payload for e in redelivered] == [{"n": n} for n in (2, 3, 4)]
            for envelope in redelivered:
                await envelope.settlement.settle()
            await again.close()
            assert (await client.state(queue)).ready == 0

    anyio.run(main)


def test_prefetch_bounds_the_unacknowledged_messages(tmp_path: Path, names: Names) -> None:
    queue = names("prefetch")

    async def main() -> None:
        async with broker() as client:
            await client.declare(queue)
            await client.publish(queue, [{"n": n} for n in range(20)])
            options = f"queue: {queue}, prefetch: 5, batch_size: 5, batch_timeout: 50ms"
            source = make_source(tmp_path, options, once=False)
            async with consuming(source) as consumer:
                await consumer.wait_for(5)
                await anyio.sleep(0.5)  # time for the broker to send more, if it would
                assert len(consumer.emitted) == 5
                assert (await client.state(queue)).ready == 15
                for envelope in consumer.emitted:
                    await envelope.settlement.settle()
                await consumer.wait_for(10)
                await anyio.sleep(0.3)
                assert len(consumer.emitted) == 10
                assert (await client.state(queue)).ready == 10

    anyio.run(main)


def test_batches_fill_up_to_batch_size_or_wait_batch_timeout(tmp_path: Path, names: Names) -> None:
    queue = names("batching")

    async def main() -> None:
        async with broker() as client:
            await client.declare(queue)
            await client.publish(queue, [{"n": n} for n in range(7)])
            options = f"queue: {queue}, prefetch: 50, batch_size: 4, batch_timeout: 100ms"
            async with consuming(make_source(tmp_path, options, once=False), settle=True) as c:
                await c.wait_for(7)
                assert [len(batch) for batch in c.batches] == [4, 3]
            assert (await client.state(queue)).ready == 0

    anyio.run(main)


def test_two_competing_consumers_share_the_queue_without_duplicates(
    tmp_path: Path, names: Names
) -> None:
    queue = names("competing")
    total = 300

    async def main() -> None:
        async with broker() as client:
            await client.declare(queue)
            options = f"queue: {queue}, prefetch: 10, batch_size: 5, batch_timeout: 20ms"
            first = make_source(tmp_path, options, once=False)
            second = make_source(tmp_path, options, once=False)
            async with (
                consuming(first, settle=True) as one,
                consuming(second, settle=True) as two,
            ):

                async def both_consuming() -> bool:
                    return (await client.state(queue)).consumers == 2

                async def all_received() -> bool:
                    return len(one.emitted) + len(two.emitted) >= total

                await eventually(both_consuming)
                await client.publish(queue, [{"n": n} for n in range(total)])
                await eventually(all_received, 15)
                await anyio.sleep(0.3)
                got = [e.payload["n"] for e in one.emitted + two.emitted]
            assert sorted(got) == list(range(total)), "every message once, none twice"
            assert one.emitted and two.emitted, "both consumers got a share"
            assert first.acked + second.acked == total
            assert (await client.state(queue)).ready == 0

    anyio.run(main)


def test_declares_a_quorum_queue_with_bindings(tmp_path: Path, names: Names) -> None:
    queue, exchange = names("quorum"), names("events")

    async def main() -> None:
        options = (
            f"queue: {queue}, declare: true, queue_type: quorum,"
            f" bind: [{{exchange: {exchange}, routing_key: 'order.*', exchange_type: topic}}]"
        )
        source = make_source(tmp_path, options, once=True)
        await source.open()
        await source.close()
        async with broker() as client:
            await client.publish("order.created", [{"id": 1}], exchange=exchange)
            await client.publish("invoice.created", [{"id": 2}], exchange=exchange)
            emitted = await read_and_close(make_source(tmp_path, options, once=True))
            assert [e.payload for e in emitted] == [{"id": 1}]
            assert emitted[0].headers["amqp-routing-key"] == "order.created"
            assert emitted[0].headers["amqp-exchange"] == exchange

        classic = make_source(tmp_path, f"queue: {queue}, declare: true", once=True)
        with pytest.raises(PermanentError, match=r"PRECONDITION_FAILED.*x-queue-type"):
            await classic.open()  # the queue exists as a quorum queue: not equivalent

    anyio.run(main)


def test_a_missing_queue_stops_the_source_at_open(tmp_path: Path, names: Names) -> None:
    source = make_source(tmp_path, f"queue: {names('missing')}", once=True)
    with pytest.raises(PermanentError, match=r"does not exist.*declare: true"):
        anyio.run(source.open)


def test_an_unreachable_broker_is_a_transient_error_without_the_password(tmp_path: Path) -> None:
    source = build_component(
        "source", "amqp: {url: 'amqp://guest:hunter22@127.0.0.1:1/', queue: q}", tmp_path
    )
    with pytest.raises(TransientError) as caught:
        anyio.run(source.open)
    assert "hunter22" not in str(caught.value)
    assert "guest:***@127.0.0.1:1" in str(caught.value)


def test_headers_message_id_and_correlation_id_are_carried(tmp_path: Path, names: Names) -> None:
    queue = names("headers")
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"

    async def main() -> None:
        async with broker() as client:
            await client.declare(queue)
            await client.publish(
                queue,
                [{"n": 1}],
                headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01", "Tenant": "eu"},
                message_id="M-1",
            )
            await client.publish(queue, [{"n": 2}], headers={"x-correlation-id": "order-42"})
            await client.publish(queue, [{"n": 3}], correlation_id="amqp-property-7")
            await client.publish(queue, [{"n": 4}], headers={"attempt": 3, "flag": True})
            emitted = await read_and_close(make_source(tmp_path, f"queue: {queue}", once=True))
        first, second, third, fourth = emitted
        assert first.correlation_id == trace_id
        assert first.headers["message-id"] == "M-1"
        assert first.headers["tenant"] == "eu"
        assert second.correlation_id == "order-42"
        assert third.correlation_id == "amqp-property-7"
        assert len(fourth.correlation_id) == 32  # a new one
        assert fourth.headers["attempt"] == "3" and fourth.headers["flag"] == "true"
        assert first.position is not None and first.position.kind == "amqp"
        assert first.position.ref == queue

    anyio.run(main)


def test_an_unreadable_body_is_marked_failed_with_its_raw_text(
    tmp_path: Path, names: Names
) -> None:
    queue = names("poison")

    async def main() -> None:
        async with broker() as client:
            await client.declare(queue)
            await client.publish(queue, [b'{"order": ', b"\xff\xfe", {"ok": True}])
            emitted = await read_and_close(make_source(tmp_path, f"queue: {queue}", once=True))
        broken, binary, good = emitted
        assert broken.failure is not None and broken.failure.step == "source"
        assert broken.failure.permanent
        assert broken.failure.reason.startswith("invalid JSON: ")
        assert broken.payload == broken.original == '{"order": '
        assert binary.failure is not None
        assert good.failure is None and good.payload == {"ok": True}

    anyio.run(main)


def test_a_lost_connection_is_reopened_and_unacked_messages_come_again(
    tmp_path: Path, names: Names
) -> None:
    queue = names("reconnect")

    async def main() -> None:
        async with broker() as client:
            await client.declare(queue)
            await client.publish(queue, [{"n": n} for n in range(3)])
            options = f"queue: {queue}, batch_size: 3, batch_timeout: 50ms, reconnect_delay: 50ms"
            source = make_source(tmp_path, options, once=False)
            async with consuming(source) as consumer:
                await consumer.wait_for(3)
                lost = consumer.emitted
                connection = source._connection
                assert connection is not None
                await connection.close()  # as if the broker dropped us
                await consumer.wait_for(6)
                for envelope in lost:  # the old channel is gone: acking them is a no-op
                    await envelope.settlement.settle()
                assert source.acked == 0
                again = consumer.emitted[3:]
                assert [e.payload for e in again] == [{"n": n} for n in range(3)]
                for envelope in again:
                    await envelope.settlement.settle()
                assert source.acked == 3
                await anyio.sleep(0.2)
            assert (await client.state(queue)).ready == 0

    anyio.run(main)
