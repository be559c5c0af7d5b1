"""The nats source against a real JetStream server: ack after settle, redelivery, durability."""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
import orjson
import pytest
from nats_support import (
    JetStream,
    Reader,
    build_source,
    delete_stream,
    eventually,
    publish_all,
    read,
    source_snippet,
)

from dovetail.connectors.nats.connection import NatsUnavailable
from dovetail.core.envelope import Envelope


def snippet(js: JetStream, durable: str, **settings: object) -> str:
    return source_snippet(js.url, js.stream, f"{js.prefix}.>", durable, **settings)


async def fill(js: JetStream, numbers: range, token: str = "orders") -> None:
    await publish_all(js.url, [(js.subject(token), orjson.dumps({"n": n}), None) for n in numbers])


def numbers(envelopes: list[Envelope]) -> list[int]:
    return [e.payload["n"] for e in envelopes]


def test_messages_are_acked_only_once_settled_and_the_rest_redelivered(
    jetstream: JetStream, tmp_path: Path
) -> None:
    durable = "acks"

    async def main() -> None:
        await fill(jetstream, range(2))
        first = build_source(snippet(jetstream, durable, ack_wait="1s"), tmp_path, once=False)
        await first.open()
        emitted = await read(first, 2)
        assert numbers(emitted) == [0, 1]
        info = await jetstream.consumer_info(durable)
        assert info.num_ack_pending == 2, "acked on receipt"

        await emitted[0].settlement.settle()

        async def one_pending() -> bool:
            return bool((await jetstream.consumer_info(durable)).num_ack_pending == 1)

        await eventually(one_pending)
        await first.close()  # the process goes away with message 1 unsettled

        second = build_source(snippet(jetstream, durable, ack_wait="1s"), tmp_path, once=False)
        await second.open()
        try:
            again = await read(second, 1, settle=True)
        finally:
            await second.close()
        assert numbers(again) == [1]
        assert again[0].failure is None
        info = await jetstream.consumer_info(durable)
        assert (info.num_ack_pending, info.num_pending, info.num_redelivered) == (0, 0, 0)

    anyio.run(main)


def test_a_slow_message_is_kept_from_redelivery_while_it_is_worked_on(
    jetstream: JetStream, tmp_path: Path
) -> None:
    async def main() -> None:
        await fill(jetstream, range(1))
        slow = build_source(snippet(jetstream, "slow", ack_wait="1s"), tmp_path, once=False)
        rival = build_source(snippet(jetstream, "slow", ack_wait="1s"), tmp_path, once=False)
        await slow.open()
        await rival.open()
        rival_reader = Reader(rival, settle=True)
        slow_reader = Reader(slow)
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(slow.run, slow_reader.emit)
                with anyio.fail_after(5):
                    await slow_reader.wait_for(1)
                group.start_soon(rival.run, rival_reader.emit)
                await anyio.sleep(2.6)  # 2.6 x ack_wait, with the message unsettled
                assert rival_reader.emitted == [], "redelivered while still in progress"
                await slow_reader.emitted[0].settlement.settle()
                await anyio.sleep(0.3)
                group.cancel_scope.cancel()
        finally:
            await slow.close()
            await rival.close()
        assert rival_reader.emitted == []
        info = await jetstream.consumer_info("slow")
        assert (info.num_ack_pending, info.num_redelivered) == (0, 0)

    anyio.run(main)


def test_the_durable_consumer_resumes_where_it_stopped(
    jetstream: JetStream, tmp_path: Path
) -> None:
    async def run_once() -> list[int]:
        source = build_source(snippet(jetstream, "resume", batch_size=2), tmp_path, once=True)
        await source.open()
        reader = Reader(source, settle=True)
        try:
            with anyio.fail_after(10):
                await source.run(reader.emit)
        finally:
            await source.close()
        return numbers(reader.emitted)

    async def main() -> None:
        await fill(jetstream, range(5))
        assert await run_once() == [0, 1, 2, 3, 4]
        await fill(jetstream, range(5, 8))
        assert await run_once() == [5, 6, 7]
        assert await run_once() == []

    anyio.run(main)


def test_once_mode_returns_at_once_when_nothing_is_pending(
    jetstream: JetStream, tmp_path: Path
) -> None:
    async def main() -> float:
        source = build_source(snippet(jetstream, "idle", fetch_timeout="5s"), tmp_path, once=True)
        await source.open()
        started = anyio.current_time()
        try:
            await source.run(Reader(source).emit)
        finally:
            await source.close()
        return anyio.current_time() - started

    assert anyio.run(main) < 1.0


def test_competing_consumers_on_one_durable_share_the_messages(
    jetstream: JetStream, tmp_path: Path
) -> None:
    total = 300

    async def main() -> tuple[list[Envelope], list[Envelope]]:
        await fill(jetstream, range(total))
        settings = {"batch_size": 10, "ack_wait": "5s"}
        sources = [
            build_source(snippet(jetstream, "workers", **settings), tmp_path, once=False)
            for _ in range(2)
        ]
        readers = [Reader(source, settle=True, pause=0.03) for source in sources]

        async def both_done() -> bool:
            return sum(len(r.emitted) for r in readers) >= total

        for source in sources:
            await source.open()
        try:
            with anyio.fail_after(25):
                async with anyio.create_task_group() as group:
                    for source, reader in zip(sources, readers, strict=True):
                        group.start_soon(source.run, reader.emit)
                    await eventually(both_done, seconds=20)
                    await anyio.sleep(0.3)  # anything delivered twice would show up now
                    group.cancel_scope.cancel()
        finally:
            for source in sources:
                await source.close()
        return readers[0].emitted, readers[1].emitted

    one, two = anyio.run(main)
    assert one and two, f"one consumer took everything ({len(one)} / {len(two)})"
    seen = numbers(one) + numbers(two)
    assert sorted(seen) == list(range(total))  # each message to exactly one of them


def test_headers_position_and_correlation_id_come_from_the_message(
    jetstream: JetStream, tmp_path: Path
) -> None:
    trace_id = uuid.uuid4().hex
    traceparent = f"00-{trace_id}-{'ab' * 8}-01"

    async def main() -> list[Envelope]:
        await publish_all(
            jetstream.url,
            [
                (jetstream.subject("a"), b'{"n": 0}', {"traceparent": traceparent, "X-Shop": "7"}),
                (jetstream.subject("b"), b'{"n": 1}', {"X-Correlation-Id": "order-42"}),
                (jetstream.subject("c"), b'{"n": 2}', None),
            ],
        )
        source = build_source(snippet(jetstream, "headers"), tmp_path, once=True)
        await source.open()
        reader = Reader(source, settle=True)
        try:
            await source.run(reader.emit)
        finally:
            await source.close()
        return reader.emitted

    first, second, third = anyio.run(main)
    assert first.correlation_id == trace_id
    assert first.headers == {"traceparent": traceparent, "x-shop": "7"}
    assert second.correlation_id == "order-42"
    assert len(third.correlation_id) == 32 and third.headers == {}
    assert first.position is not None and third.position is not None
    assert (first.position.kind, first.position.ref, first.position.offset) == (
        "nats",
        jetstream.stream,
        1,
    )
    assert third.position.describe() == f"{jetstream.stream}#3"


def test_undecodable_bodies_are_marked_failed_with_their_raw_text(
    jetstream: JetStream, tmp_path: Path
) -> None:
    async def main() -> tuple[list[Envelope], list[Envelope]]:
        await publish_all(
            jetstream.url,
            [
                (jetstream.subject("json"), b'{"n": 1', None),
                (jetstream.subject("json"), b"[" * 100 + b"]" * 100, None),
            ],
        )
        source = build_source(snippet(jetstream, "poison", max_depth=10), tmp_path, once=True)
        await source.open()
        reader = Reader(source)
        try:
            await source.run(reader.emit)
        finally:
            await source.close()
        text_source = build_source(
            source_snippet(
                jetstream.url, jetstream.stream, f"{jetstream.prefix}.text", "text", format="text"
            ),
            tmp_path,
            once=True,
        )
        await publish_all(
            jetstream.url,
            [
                (jetstream.subject("text"), "grüße".encode(), None),
                (jetstream.subject("text"), b"\xff\xfe", None),
            ],
        )
        await text_source.open()
        text_reader = Reader(text_source)
        try:
            await text_source.run(text_reader.emit)
        finally:
            await text_source.close()
        return reader.emitted, text_reader.emitted

    (bad_json, too_deep), (text, not_utf8) = anyio.run(main)
    assert bad_json.failure is not None and bad_json.failure.step == "source"
    assert bad_json.failure.reason.startswith("invalid JSON:")
    assert bad_json.failure.permanent and bad_json.payload == '{"n": 1'
    assert too_deep.failure is not None
    assert too_deep.failure.reason == "nesting deeper than the limit of 10 levels"
    assert text.payload == "grüße" and text.failure is None
    assert not_utf8.failure is not None and "not valid UTF-8" in not_utf8.failure.reason
    assert not_utf8.payload == "\ufffd\ufffd"


def test_the_last_allowed_delivery_is_marked_failed_not_processed(
    jetstream: JetStream, tmp_path: Path
) -> None:
    settings = {"ack_wait": "0.5s", "max_deliver": 2}

    async def main() -> Envelope:
        await fill(jetstream, range(1))
        first = build_source(snippet(jetstream, "budget", **settings), tmp_path, once=False)
        await first.open()
        try:
            (unsettled,) = await read(first, 1)
            assert unsettled.failure is None
        finally:
            await first.close()  # as if the process died while working on it
        second = build_source(snippet(jetstream, "budget", **settings), tmp_path, once=False)
        await second.open()
        try:
            (last,) = await read(second, 1, settle=True)
        finally:
            await second.close()
        return last

    last = anyio.run(main)
    assert last.failure is not None and last.failure.permanent
    assert last.failure.reason == (
        "delivered 2 times without being settled (max_deliver 2): earlier attempts ended"
        " without an ack"
    )
    assert last.payload == {"n": 0}
    info = anyio.run(jetstream.consumer_info, "budget")
    assert info.num_ack_pending == 0


def test_a_missing_stream_is_reported_and_create_stream_creates_it(
    nats_url: str, tmp_path: Path
) -> None:
    token = uuid.uuid4().hex[:10]
    stream, subject = f"NEW_{token}", f"new{token}.>"

    async def main() -> None:
        absent = build_source(source_snippet(nats_url, stream, subject, "d"), tmp_path, once=True)
        with pytest.raises(NatsUnavailable, match="create_stream: true"):
            await absent.open()
        created = build_source(
            source_snippet(nats_url, stream, subject, "d", create_stream=True),
            tmp_path,
            once=True,
        )
        try:
            await created.open()
            await publish_all(nats_url, [(f"new{token}.x", b'{"n": 0}', None)])
            reader = Reader(created, settle=True)
            await created.run(reader.emit)
            assert [e.payload for e in reader.emitted] == [{"n": 0}]
        finally:
            await created.close()
            await delete_stream(nats_url, stream)

    anyio.run(main)


def test_a_setting_the_existing_durable_cannot_take_is_reported(
    jetstream: JetStream, tmp_path: Path
) -> None:
    async def main() -> None:
        first = build_source(snippet(jetstream, "fixed"), tmp_path, once=True)
        await first.open()
        await first.close()
        changed = build_source(
            snippet(jetstream, "fixed", deliver_policy="new"), tmp_path, once=True
        )
        with pytest.raises(NatsUnavailable, match="deliver policy"):
            await changed.open()
        updated = build_source(snippet(jetstream, "fixed", ack_wait="7s"), tmp_path, once=True)
        await updated.open()
        await updated.close()
        info = await jetstream.consumer_info("fixed")
        assert info.config.ack_wait == 7.0

    anyio.run(main)


def test_an_unreachable_server_is_reported_on_open(tmp_path: Path) -> None:
    source = build_source(
        source_snippet("nats://127.0.0.1:9", "S", "s.>", "d", connect_timeout="0.5s"),
        tmp_path,
        once=True,
    )
    with pytest.raises(NatsUnavailable, match=r"cannot connect to NATS at nats://127\.0\.0\.1:9"):
        anyio.run(source.open)
