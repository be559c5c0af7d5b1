"""Flows through the real runner and SQLite store: nats -> nats, poison messages, idempotency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import orjson
from nats_support import JetStream, publish_all

from dovetail.api import run_flow
from dovetail.store.base import DeadLetterQuery
from dovetail.store.sqlite import SqliteStore

FLOW = """\
flow: nats-orders
version: 1.0.0
source:
  nats:
    url: {url}
    stream: {stream}
    subject: {prefix}.in.>
    durable: orders
    fetch_timeout: 1s
    ack_wait: 5s
steps:
  - map:
      jsonata: '{{"order_id": order_id, "total": total * 2}}'
sink:
  nats:
    url: {url}
    subject_from: "'{prefix}.out.' & order_id"
    stream: {stream}
delivery:
  idempotency_key: order_id
runtime: {{batch_size: 10}}
"""


async def dead_letters(project: Path, flow: str) -> list[Any]:
    store = SqliteStore(project / ".dovetail/state.db")
    await store.open()
    try:
        return await store.dead_letters(DeadLetterQuery(flow=flow))
    finally:
        await store.close()


def test_a_nats_to_nats_flow_delivers_good_messages_and_dead_letters_poison(
    jetstream: JetStream, project: Path
) -> None:
    flow_file = project / "flows/nats-orders.yaml"
    flow_file.write_text(
        FLOW.format(url=jetstream.url, stream=jetstream.stream, prefix=jetstream.prefix)
    )
    incoming = [
        (jetstream.subject("in", "a"), orjson.dumps({"order_id": "A-1", "total": 5}), None),
        (jetstream.subject("in", "a"), b'{"order_id": "A-2", "total": ', None),  # poison
        (jetstream.subject("in", "b"), orjson.dumps({"order_id": "A-3", "total": 7}), None),
    ]
    anyio.run(publish_all, jetstream.url, incoming)

    summary = run_flow(flow_file)

    assert summary.received == 3
    assert summary.delivered_total == 2
    assert summary.dead_lettered == 1
    stored = [m for m in anyio.run(jetstream.stored) if ".out." in m.subject]
    assert [(m.subject, orjson.loads(m.data)) for m in stored] == [
        (jetstream.subject("out", "A-1"), {"order_id": "A-1", "total": 10}),
        (jetstream.subject("out", "A-3"), {"order_id": "A-3", "total": 14}),
    ]
    assert [m.headers["Nats-Msg-Id"] for m in stored] == ["A-1", "A-3"]
    (letter,) = anyio.run(dead_letters, project, "nats-orders")
    assert letter.step == "source"
    assert letter.reason.startswith("invalid JSON:")
    assert letter.payload == '{"order_id": "A-2", "total": '
    assert letter.source_position == {
        "kind": "nats",
        "ref": jetstream.stream,
        "offset": 2,
        "line": None,
    }
    # everything was acked (the poison message terminated): nothing left to redeliver
    info = anyio.run(jetstream.consumer_info, "orders")
    assert (info.num_ack_pending, info.num_pending, info.num_redelivered) == (0, 0, 0)
    assert run_flow(flow_file).received == 0


def test_an_order_that_arrives_again_is_not_published_twice(
    jetstream: JetStream, project: Path
) -> None:
    flow_file = project / "flows/nats-orders.yaml"
    flow_file.write_text(
        FLOW.format(url=jetstream.url, stream=jetstream.stream, prefix=jetstream.prefix)
    )
    message = (jetstream.subject("in", "x"), orjson.dumps({"order_id": "B-1", "total": 1}), None)
    anyio.run(publish_all, jetstream.url, [message])
    assert run_flow(flow_file).delivered_total == 1

    anyio.run(publish_all, jetstream.url, [message])  # a producer's retry
    again = run_flow(flow_file)

    assert (again.received, again.duplicates, again.delivered_total) == (1, 1, 0)
    outputs = [m for m in anyio.run(jetstream.stored) if ".out." in m.subject]
    assert len(outputs) == 1
