"""The redis sink against a real Redis: XADD with trace fields, trimming, dedupe, failures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from dovetail.connectors.redis.sink import RedisSink
from dovetail.core.ack import Settlement
from dovetail.core.envelope import Envelope
from dovetail.errors import PermanentError, TransientError
from dovetail.testing.components import build_component


def envelope(payload: Any, key: str | None = None) -> Envelope:
    headers = {"idempotency-key": key} if key is not None else {}
    return Envelope(payload=payload, settlement=Settlement(), headers=headers)


def sink(project: Path, snippet: str) -> RedisSink:
    built: RedisSink = build_component("sink", snippet, project)
    return built


def write(target: RedisSink, batch: list[Envelope]) -> list[BaseException | None]:
    async def main() -> list[BaseException | None]:
        await target.open()
        try:
            return await target.write(batch)
        finally:
            await target.close()

    return anyio.run(main)


def test_each_message_becomes_one_entry_with_trace_fields(
    project: Path, rdb: Any, streams: Callable[[str], str]
) -> None:
    stream = streams("out")
    batch = [envelope({"n": 1}, key="K-1"), envelope("plain")]
    assert write(sink(project, f"redis: {{stream: '{stream}'}}"), batch) == [None, None]
    entries = rdb.xrange(stream)
    assert [orjson.loads(fields[b"payload"]) for _, fields in entries] == [{"n": 1}, "plain"]
    first = entries[0][1]
    assert first[b"x-correlation-id"].decode() == batch[0].correlation_id
    assert first[b"traceparent"].decode().startswith(f"00-{batch[0].correlation_id}-")
    assert first[b"idempotency-key"] == b"K-1"
    assert b"idempotency-key" not in entries[1][1]


def test_text_format_and_field_maps(project: Path, rdb: Any, streams: Callable[[str], str]) -> None:
    text_stream, map_stream = streams("text"), streams("map")
    assert write(
        sink(project, f"redis: {{stream: '{text_stream}', field: body, format: text}}"),
        [envelope("hello")],
    ) == [None]
    assert rdb.xrange(text_stream)[0][1][b"body"] == b"hello"
    results = write(
        sink(project, f"redis: {{stream: '{map_stream}', field: null}}"),
        [envelope({"id": "A", "qty": 2, "tags": ["x"]}), envelope([1, 2])],
    )
    assert results[0] is None
    assert isinstance(results[1], PermanentError)
    fields = rdb.xrange(map_stream)[0][1]
    assert (fields[b"id"], fields[b"qty"], fields[b"tags"]) == (b"A", b"2", b'["x"]')


def test_a_message_whose_key_was_appended_already_is_not_appended_again(
    project: Path, rdb: Any, streams: Callable[[str], str]
) -> None:
    stream = streams("dedupe")
    target = sink(project, f"redis: {{stream: '{stream}', dedupe_ttl: 1h}}")

    async def main() -> None:
        await target.open()
        try:
            first = await target.write([envelope({"n": 1}, key="K"), envelope({"n": 2}, key="L")])
            again = await target.write([envelope({"n": 1}, key="K"), envelope({"n": 3})])
        finally:
            await target.close()
        assert first == again == [None, None]

    anyio.run(main)
    assert [orjson.loads(f[b"payload"]) for _, f in rdb.xrange(stream)] == [
        {"n": 1},
        {"n": 2},
        {"n": 3},
    ]
    assert target.duplicates == 1
    dedupe_key = target.dedupe_key("K")
    assert rdb.get(dedupe_key) == rdb.xrange(stream)[0][0]  # remembers the entry it added
    assert 0 < rdb.pttl(dedupe_key) <= 3_600_000


def test_maxlen_trims_the_stream_approximately(
    project: Path, rdb: Any, streams: Callable[[str], str]
) -> None:
    stream = streams("trim")
    target = sink(project, f"redis: {{stream: '{stream}', maxlen: 10}}")
    assert write(target, [envelope({"n": n}) for n in range(1000)]) == [None] * 1000
    assert 10 <= rdb.xlen(stream) < 1000


def test_an_error_reply_dead_letters_and_forgets_the_dedupe_key(
    project: Path, rdb: Any, streams: Callable[[str], str]
) -> None:
    stream = streams("wrongtype")
    rdb.set(stream, "not a stream")
    target = sink(project, f"redis: {{stream: '{stream}'}}")
    (result,) = write(target, [envelope({"n": 1}, key="K")])
    assert isinstance(result, PermanentError)
    assert "WRONGTYPE" in result.reason
    assert rdb.exists(target.dedupe_key("K")) == 0  # a later attempt is not a "duplicate"


def test_an_unreachable_redis_is_a_transient_failure(project: Path) -> None:
    target = sink(project, "redis: {url: 'redis://127.0.0.1:1/0', stream: s, timeout: 1s}")
    results = write(target, [envelope({"n": 1}), envelope({"n": 2})])
    assert all(isinstance(r, TransientError) for r in results)


@pytest.mark.parametrize("url", ["http://cache:6379", "cache:6379"])
def test_urls_other_than_redis_are_refused(project: Path, url: str) -> None:
    with pytest.raises(ValueError, match="redis://"):
        sink(project, f"redis: {{url: '{url}', stream: s}}")
