"""The redis source against a real Redis: XACK after settlement only, recovery, take-over, DLQ."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import orjson

from dovetail.api import open_store, run_flow
from dovetail.config.loader import load_project
from dovetail.connectors.redis.source import RedisSource
from dovetail.core.envelope import Envelope
from dovetail.store.base import DeadLetterQuery
from dovetail.testing.components import build_component


def add(rdb: Any, stream: str, payloads: list[Any], **extra: str) -> list[bytes]:
    """XADD each payload as JSON in the ``payload`` field (plus ``extra`` fields)."""
    return [rdb.xadd(stream, {"payload": orjson.dumps(p), **extra}) for p in payloads]


def pending(rdb: Any, stream: str, group: str) -> int:
    return int(rdb.xpending(stream, group)["pending"])


def source(project: Path, stream: str, extra: str = "", **options: Any) -> RedisSource:
    snippet = f"redis: {{stream: '{stream}', group: g1, consumer: c1{extra}}}"
    built: RedisSource = build_component("source", snippet, project, **options)
    return built


async def read_all(src: RedisSource) -> list[Envelope]:
    """Run the source in once mode, collecting what it emits without settling it."""
    emitted: list[Envelope] = []

    async def emit(batch: list[Envelope]) -> None:
        emitted.extend(batch)

    await src.open()
    with anyio.fail_after(10):
        await src.run(emit)
    return emitted


def test_entries_are_acknowledged_only_after_they_settle(
    project: Path, rdb: Any, streams: Callable[[str], str]
) -> None:
    stream = streams("ack")
    ids = add(rdb, stream, [{"n": 1}, {"n": 2}, {"n": 3}])

    async def main() -> None:
        src = source(project, stream)
        emitted = await read_all(src)
        assert [e.payload for e in emitted] == [{"n": 1}, {"n": 2}, {"n": 3}]
        assert [e.headers["redis-stream-id"] for e in emitted] == [i.decode() for i in ids]
        await src.commit()
        assert pending(rdb, stream, "g1") == 3  # read, not settled: nothing acknowledged
        await emitted[0].settlement.settle()
        await emitted[2].settlement.settle()
        assert pending(rdb, stream, "g1") == 3  # settled but not committed yet
        await src.commit()
        left = rdb.xpending_range(stream, "g1", "-", "+", 10)
        assert [entry["message_id"] for entry in left] == [ids[1]]
        await emitted[1].settlement.settle()
        await src.close()  # close acknowledges what is settled
        assert pending(rdb, stream, "g1") == 0

    anyio.run(main)


def test_a_restarted_consumer_reads_its_unacknowledged_entries_again(
    project: Path, rdb: Any, streams: Callable[[str], str]
) -> None:
    stream = streams("crash")
    add(rdb, stream, [{"n": n} for n in range(5)])

    async def main() -> None:
        crashed = source(project, stream)
        first = await read_all(crashed)
        assert len(first) == 5
        await first[0].settlement.settle()
        await crashed.commit()
        await crashed._client.aclose()  # dies: the other four are never acknowledged
        add(rdb, stream, [{"n": 5}])

        restarted = source(project, stream)
        second = await read_all(restarted)
        assert [e.payload["n"] for e in second] == [1, 2, 3, 4, 5]  # pending first, then new
        for envelope in second:
            await envelope.settlement.settle()
        await restarted.close()
        assert pending(rdb, stream, "g1") == 0

    anyio.run(main)


def test_entries_left_pending_by_a_dead_consumer_are_taken_over(
    project: Path, rdb: Any, streams: Callable[[str], str]
) -> None:
    stream = streams("claim")
    rdb.xgroup_create(stream, "g1", id="0", mkstream=True)
    add(rdb, stream, [{"n": n} for n in range(4)])
    rdb.xreadgroup("g1", "dead", {stream: ">"}, count=10)  # reads, then dies without acking
    assert pending(rdb, stream, "g1") == 4

    async def main() -> None:
        patient = source(project, stream, ", claim_idle: 60s")
        assert await read_all(patient) == []  # not idle long enough: left with its owner
        await patient.close()
        await anyio.sleep(0.15)
        rescuer = source(project, stream, ", claim_idle: 100ms")
        taken = await read_all(rescuer)
        assert sorted(e.payload["n"] for e in taken) == [0, 1, 2, 3]
        assert rescuer.claimed == 4
        owners = {e["consumer"] for e in rdb.xpending_range(stream, "g1", "-", "+", 10)}
        assert owners == {b"c1"}
        for envelope in taken:
            await envelope.settlement.settle()
        await rescuer.close()
        assert pending(rdb, stream, "g1") == 0

    anyio.run(main)


def test_a_new_group_starts_at_the_oldest_or_the_newest_entry(
    project: Path, rdb: Any, streams: Callable[[str], str]
) -> None:
    stream = streams("start")
    add(rdb, stream, [{"n": 0}])

    async def main() -> None:
        newest = build_component(
            "source", f"redis: {{stream: '{stream}', group: late, start: newest}}", project
        )
        assert await read_all(newest) == []
        await newest.close()
        oldest = source(project, stream)
        assert [e.payload for e in await read_all(oldest)] == [{"n": 0}]
        await oldest.close()

    anyio.run(main)


def test_whole_field_maps_become_payloads_and_trace_fields_headers(
    project: Path, rdb: Any, streams: Callable[[str], str]
) -> None:
    stream = streams("map")
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    rdb.xadd(stream, {"order_id": "A-1", "total": "12.5", "traceparent": trace})

    async def main() -> None:
        src = source(project, stream, ", field: null")
        (envelope,) = await read_all(src)
        assert envelope.payload == {"order_id": "A-1", "total": "12.5"}
        assert envelope.correlation_id == "0af7651916cd43dd8448eb211c80319c"
        assert envelope.failure is None
        await src.close()

    anyio.run(main)


FLOW = """\
flow: stream-relay
version: 1.0.0
source:
  redis: {{stream: '{inbound}', group: relay, consumer: w1}}
steps:
  - map: {{jsonata: '{{"order_id": order_id, "qty": qty * 2}}'}}
sink:
  redis: {{stream: '{outbound}'}}
delivery:
  idempotency_key: order_id
"""


def test_a_flow_relays_entries_and_dead_letters_poison_with_its_reason(
    project: Path, rdb: Any, streams: Callable[[str], str]
) -> None:
    inbound, outbound = streams("in"), streams("out")
    good = add(rdb, inbound, [{"order_id": "A", "qty": 1}, {"order_id": "B", "qty": 2}])
    rdb.xadd(inbound, {"payload": b"{not json"})
    rdb.xadd(inbound, {"body": b"{}"})
    trace = "00-1234567890abcdef1234567890abcdef-b7ad6b7169203331-01"
    rdb.xadd(inbound, {"payload": orjson.dumps({"order_id": "C", "qty": 3}), "traceparent": trace})
    flow_file = project / "flows" / "stream-relay.yaml"
    flow_file.write_text(FLOW.format(inbound=inbound, outbound=outbound), encoding="utf-8")

    summary = run_flow(flow_file)

    assert summary.dead_lettered == 2
    out = rdb.xrange(outbound)
    payloads = [orjson.loads(fields[b"payload"]) for _, fields in out]
    assert payloads == [
        {"order_id": "A", "qty": 2},
        {"order_id": "B", "qty": 4},
        {"order_id": "C", "qty": 6},
    ]
    assert out[2][1][b"x-correlation-id"] == b"1234567890abcdef1234567890abcdef"
    assert out[2][1][b"traceparent"].startswith(b"00-1234567890abcdef1234567890abcdef-")
    assert out[0][1][b"idempotency-key"] == b"A"
    assert pending(rdb, inbound, "relay") == 0  # poison is acknowledged once dead-lettered

    async def letters() -> list[tuple[str, Any, Any]]:
        store = await open_store(load_project(project))
        try:
            found = await store.dead_letters(DeadLetterQuery(flow="stream-relay"))
        finally:
            await store.close()
        return [(d.reason, d.source_position, d.payload) for d in found]

    reasons = sorted(anyio.run(letters), key=lambda item: item[0])
    assert reasons[0][0].startswith("invalid JSON")
    assert reasons[1][0] == "the entry has no field 'payload'"
    assert all(position["ref"].startswith(f"{inbound}/") for _, position, _ in reasons)
    assert {"body": "{}"} in [payload for _, _, payload in reasons]
    assert good[0] != good[1]

    again = run_flow(flow_file)  # nothing left: every entry was acknowledged
    assert again.received == 0
