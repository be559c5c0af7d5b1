"""The mqtt source against a real Mosquitto: ack after settlement, persistent sessions, DLQ."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import aiomqtt
import anyio
import pytest
from mqtt_support import HOST, PORT, Names, publish

from dovetail.api import open_store, run_flow
from dovetail.config.loader import load_project
from dovetail.connectors.mqtt.source import MqttSource
from dovetail.core.envelope import Envelope
from dovetail.errors import TransientError
from dovetail.store.base import DeadLetterQuery
from dovetail.testing.components import build_component


def source(project: Path, topic: str, client_id: str, extra: str = "") -> MqttSource:
    snippet = (
        f"mqtt: {{host: '{HOST}', port: {PORT}, topics: ['{topic}'], client_id: {client_id},"
        f" once_idle: 300ms{extra}}}"
    )
    built: MqttSource = build_component("source", snippet, project)
    return built


async def read(src: MqttSource, *, settle: bool) -> list[Envelope]:
    """Run the source once; settle each batch as it comes (or never); then disconnect."""
    emitted: list[Envelope] = []
    arrived = anyio.Event()

    async def emit(batch: list[Envelope]) -> None:
        emitted.extend(batch)
        arrived.set()
        if settle:
            for envelope in batch:
                await envelope.settlement.settle()

    await src.open()
    try:
        with anyio.fail_after(10):
            if settle:
                await src.run(emit)
            else:  # unsettled messages keep run() waiting: stop once they are all in
                async with anyio.create_task_group() as group:
                    group.start_soon(src.run, emit)
                    await arrived.wait()
                    await anyio.sleep(0.3)
                    group.cancel_scope.cancel()
    finally:
        await src.close()
    return emitted


def test_a_message_is_acknowledged_only_once_it_is_settled(project: Path, names: Names) -> None:
    topic, client_id = names.topic("orders"), names.client_id("ack")

    async def main() -> None:
        await read(source(project, topic, client_id), settle=True)  # creates the session
        await publish(topic, [{"n": 1}, {"n": 2}, {"n": 3}])
        unsettled = source(project, topic, client_id)
        first = await read(unsettled, settle=False)
        assert [e.payload for e in first] == [{"n": 1}, {"n": 2}, {"n": 3}]
        assert unsettled.acked == 0
        # not acknowledged: the broker sends them again on the resumed session
        settling = source(project, topic, client_id)
        again = await read(settling, settle=True)
        assert [e.payload for e in again] == [{"n": 1}, {"n": 2}, {"n": 3}]
        assert settling.acked == 3
        assert await read(source(project, topic, client_id), settle=True) == []

    anyio.run(main)


def test_messages_published_while_the_flow_is_down_arrive_on_the_next_start(
    project: Path, names: Names
) -> None:
    topic, client_id = names.topic("telemetry/+"), names.client_id("offline")

    async def main() -> None:
        assert await read(source(project, topic, client_id), settle=True) == []
        await publish(topic.replace("+", "line-1"), [{"n": n} for n in range(5)])
        await publish(topic.replace("+", "line-2"), [{"n": 5}])
        received = await read(source(project, topic, client_id), settle=True)
        assert sorted(e.payload["n"] for e in received) == [0, 1, 2, 3, 4, 5]
        assert {e.headers["mqtt-topic"] for e in received} == {
            topic.replace("+", "line-1"),
            topic.replace("+", "line-2"),
        }
        assert all(e.position is not None and e.position.kind == "mqtt" for e in received)

    anyio.run(main)


def test_mqtt5_user_properties_carry_the_correlation_id(project: Path, names: Names) -> None:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    topic, client_id = names.topic("traced"), names.client_id("v5")
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    properties.UserProperty = [
        ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ("Tenant", "acme"),
    ]

    async def main() -> None:
        v5 = source(project, topic, client_id, ", protocol: 5, session_expiry: 5m")
        assert await read(v5, settle=True) == []
        await publish(topic, [{"n": 1}], protocol=5, properties=properties)
        (envelope,) = await read(
            source(project, topic, client_id, ", protocol: 5, session_expiry: 5m"), settle=True
        )
        assert envelope.correlation_id == "0af7651916cd43dd8448eb211c80319c"
        assert envelope.headers["tenant"] == "acme"

    anyio.run(main)


def test_an_unreachable_broker_fails_a_once_run(project: Path) -> None:
    src = build_component(
        "source", "mqtt: {topics: [a/b], port: 1, client_id: nobody, timeout: 1s}", project
    )

    async def ignore(batch: list[Envelope]) -> None:
        raise AssertionError("nothing can arrive")

    async def main() -> None:
        await src.open()
        with pytest.raises(TransientError, match=r"mqtt://127\.0\.0\.1:1"):
            await src.run(ignore)

    anyio.run(main)


FLOW = """\
flow: telemetry-to-table
version: 1.0.0
source:
  mqtt: {{host: '{host}', port: {port}, topics: ['{topic}'], client_id: {client_id},
         once_idle: 500ms}}
sink:
  sql:
    url: sqlite:///data/out.db
    init_sql: sql/init.sql
    table: readings
    mode: upsert
    key: [id]
delivery:
  idempotency_key: id
"""


def test_a_flow_stores_good_messages_and_dead_letters_poison_with_its_reason(
    project: Path, names: Names
) -> None:
    topic, client_id = names.topic("readings"), names.client_id("flow")
    (project / "sql").mkdir()
    (project / "data").mkdir()
    (project / "sql" / "init.sql").write_text(
        "CREATE TABLE IF NOT EXISTS readings (id TEXT PRIMARY KEY, value INTEGER);"
    )
    flow_file = project / "flows" / "telemetry-to-table.yaml"
    flow_file.write_text(
        FLOW.format(topic=topic, client_id=client_id, host=HOST, port=PORT), encoding="utf-8"
    )
    assert run_flow(flow_file).received == 0  # the session exists from now on

    messages: list[Any] = [{"id": "r1", "value": 1}, b"\x00not json", {"id": "r2", "value": 2}]
    anyio.run(publish, topic, messages)
    summary = run_flow(flow_file)

    assert summary.received == 3
    assert summary.dead_lettered == 1
    with sqlite3.connect(project / "data" / "out.db") as db:
        assert db.execute("SELECT id, value FROM readings ORDER BY id").fetchall() == [
            ("r1", 1),
            ("r2", 2),
        ]

    async def letters() -> list[Any]:
        store = await open_store(load_project(project))
        try:
            return await store.dead_letters(DeadLetterQuery(flow="telemetry-to-table"))
        finally:
            await store.close()

    (letter,) = anyio.run(letters)
    assert letter.reason.startswith("invalid JSON")
    assert letter.step == "source"
    assert letter.source_position is not None
    assert letter.source_position["ref"] == topic
    assert run_flow(flow_file).received == 0  # all three were acknowledged


def test_after_a_lost_connection_unacknowledged_messages_come_again(
    project: Path, names: Names
) -> None:
    topic, client_id = names.topic("reconnect"), names.client_id("reconnect")

    async def main() -> None:
        await read(source(project, topic, client_id), settle=True)  # creates the session
        src = build_component(
            "source",
            f"mqtt: {{host: '{HOST}', port: {PORT}, topics: ['{topic}'], client_id: {client_id}}}",
            project,
            once=False,
        )
        emitted: list[Envelope] = []
        more = anyio.Event()

        async def emit(batch: list[Envelope]) -> None:
            nonlocal more
            emitted.extend(batch)
            more.set()
            more = anyio.Event()

        async def wait_for(count: int) -> None:
            with anyio.fail_after(10):
                while len(emitted) < count:
                    await more.wait()

        await src.open()
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(src.run, emit)
                await publish(topic, [{"n": 1}, {"n": 2}])
                await wait_for(2)
                # the same client id connecting elsewhere makes the broker drop the source
                intruder = aiomqtt.Client(HOST, PORT, identifier=client_id, clean_session=False)
                intruder._client.manual_ack_set(True)  # takes nothing away from the session
                async with intruder:
                    pass
                for envelope in emitted[:2]:  # settled after the link broke: acks dropped
                    await envelope.settlement.settle()
                assert src.acked == 0
                await wait_for(4)  # the source reconnected; the broker sent both again
                assert [e.payload for e in emitted[2:]] == [{"n": 1}, {"n": 2}]
                for envelope in emitted[2:]:
                    await envelope.settlement.settle()
                assert src.acked == 2
                group.cancel_scope.cancel()
        finally:
            await src.close()
        assert await read(source(project, topic, client_id), settle=True) == []

    anyio.run(main)
