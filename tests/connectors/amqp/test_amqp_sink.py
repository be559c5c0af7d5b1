"""The amqp sink against a real RabbitMQ: confirms, unroutable, nacks, routing, headers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from aio_pika import DeliveryMode
from amqp_support import AMQP_URL, broker

from dovetail.connectors.amqp.sink import AmqpSink
from dovetail.core.ack import Settlement
from dovetail.core.envelope import Envelope
from dovetail.errors import MappingFailed, PermanentError, TransientError
from dovetail.testing.components import build_component

Names = Callable[[str], str]


def make_sink(tmp_path: Path, options: str, url: str = AMQP_URL) -> AmqpSink:
    sink = build_component("sink", f"amqp: {{url: '{url}', {options}}}", tmp_path)
    assert isinstance(sink, AmqpSink)
    return sink


def envelopes(payloads: Sequence[Any], **headers: str) -> list[Envelope]:
    return [
        Envelope(payload=payload, settlement=Settlement(), headers=dict(headers))
        for payload in payloads
    ]


async def write(sink: AmqpSink, batch: list[Envelope]) -> list[BaseException | None]:
    await sink.open()
    try:
        return await sink.write(batch)
    finally:
        await sink.close()


def test_confirmed_messages_are_persistent_and_carry_ids(tmp_path: Path, names: Names) -> None:
    queue = names("out")
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"

    batch = envelopes([{"n": 1}, {"n": 2}])
    batch[0].headers["idempotency-key"] = "order-1"
    batch[0].correlation_id = trace_id

    async def main() -> None:
        async with broker() as client:
            await client.declare(queue)
            options = f"routing_key: {queue}, headers: {{source-system: shop}}"
            assert await write(make_sink(tmp_path, options), batch) == [None, None]
            first, second = await client.get_all(queue)
        assert first.body == b'{"n":1}' and second.body == b'{"n":2}'
        assert first.delivery_mode == DeliveryMode.PERSISTENT
        assert first.content_type == "application/json"
        assert first.message_id == "order-1"
        assert second.message_id == batch[1].id  # no idempotency key: the message's id
        assert first.correlation_id == trace_id
        headers = first.headers
        assert headers["x-correlation-id"] == trace_id
        traceparent = headers["traceparent"]
        assert isinstance(traceparent, str) and traceparent.startswith(f"00-{trace_id}-")
        assert headers["source-system"] == "shop"

    anyio.run(main)


def test_an_unroutable_message_is_a_permanent_error(tmp_path: Path, names: Names) -> None:
    async def main() -> None:
        sink = make_sink(tmp_path, f"routing_key: {names('nobody-listens')}")
        (result,) = await write(sink, envelopes([{"n": 1}]))
        assert isinstance(result, PermanentError)
        assert "unroutable" in result.reason and "NO_ROUTE" in result.reason

    anyio.run(main)


def test_a_broker_nack_is_a_transient_error(tmp_path: Path, names: Names) -> None:
    queue = names("full")

    async def main() -> None:
        async with broker() as client:
            await client.declare(queue, **{"x-max-length": 1, "x-overflow": "reject-publish"})
            sink = make_sink(tmp_path, f"routing_key: {queue}")
            await sink.open()
            try:
                assert await sink.write(envelopes([{"n": 1}])) == [None]
                (refused,) = await sink.write(envelopes([{"n": 2}]))
            finally:
                await sink.close()
            assert isinstance(refused, TransientError)
            assert "nack" in refused.reason
            assert [m.body for m in await client.get_all(queue)] == [b'{"n":1}']

    anyio.run(main)


def test_a_missing_exchange_fails_permanently_and_the_sink_recovers(
    tmp_path: Path, names: Names
) -> None:
    exchange, queue = names("exchange"), names("bound")

    async def main() -> None:
        sink = make_sink(tmp_path, f"exchange: {exchange}, routing_key: created")
        await sink.open()
        try:
            results = await sink.write(envelopes([{"n": 1}, {"n": 2}]))
            assert all(isinstance(r, PermanentError | TransientError) for r in results)
            assert any(isinstance(r, PermanentError) and "NOT_FOUND" in r.reason for r in results)
            async with broker() as client:
                await client.channel.declare_exchange(exchange, "direct", durable=True)
                await client.declare(queue)
                declared = await client.channel.get_queue(queue)
                await declared.bind(exchange, routing_key="created")
                assert await sink.write(envelopes([{"n": 3}])) == [None]
                assert [m.body for m in await client.get_all(queue)] == [b'{"n":3}']
        finally:
            await sink.close()

    anyio.run(main)


def test_routing_key_expression_routes_each_message(tmp_path: Path, names: Names) -> None:
    exchange, eu, us = names("topic"), names("eu"), names("us")

    async def main() -> None:
        async with broker() as client:
            await client.channel.declare_exchange(exchange, "topic", durable=True)
            for queue, key in ((eu, "order.eu"), (us, "order.us")):
                await client.declare(queue)
                await (await client.channel.get_queue(queue)).bind(exchange, routing_key=key)
            sink = make_sink(
                tmp_path,
                f"exchange: {exchange}, routing_key_expression: '\"order.\" & region'",
            )
            batch = envelopes([{"region": "eu", "n": 1}, {"region": "us", "n": 2}, {"n": 3}])
            first, second, third = await write(sink, batch)
            assert first is None and second is None
            assert isinstance(third, PermanentError)
            assert [m.body for m in await client.get_all(eu)] == [b'{"region":"eu","n":1}']
            assert [m.body for m in await client.get_all(us)] == [b'{"region":"us","n":2}']

    anyio.run(main)


def test_a_routing_key_expression_that_fails_dead_letters_the_message(tmp_path: Path) -> None:
    sink = make_sink(tmp_path, "routing_key_expression: '$number(code)'")
    with pytest.raises(MappingFailed):
        sink._routing_key(envelopes([{"code": "x"}])[0])


@pytest.mark.parametrize(
    ("options", "payload", "body"),
    [
        ("format: text", "plain text ü", "plain text ü".encode()),
        ("format: bytes-base64", "AAEC/w==", b"\x00\x01\x02\xff"),
    ],
)
def test_text_and_base64_formats_write_raw_bodies(
    tmp_path: Path, names: Names, options: str, payload: str, body: bytes
) -> None:
    queue = names("raw")

    async def main() -> None:
        async with broker() as client:
            await client.declare(queue)
            sink = make_sink(tmp_path, f"routing_key: {queue}, {options}")
            wrong = await write(sink, envelopes([payload, {"not": "text"}]))
            assert wrong[0] is None and isinstance(wrong[1], PermanentError)
            (message,) = await client.get_all(queue)
            assert message.body == body

    anyio.run(main)


def test_an_unreachable_broker_is_a_transient_error(tmp_path: Path) -> None:
    sink = make_sink(tmp_path, "routing_key: q", url="amqp://guest:guest@127.0.0.1:1/")

    async def main() -> None:
        (result,) = await sink.write(envelopes([{"n": 1}]))
        assert isinstance(result, TransientError)
        with pytest.raises(TransientError, match="connecting to"):
            await sink.open()

    anyio.run(main)
