"""The ``kafka`` source and sink against a running Kafka-compatible broker (see conftest)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition  # type: ignore[import-untyped]
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped]

from dovetail.core.ack import Settlement
from dovetail.core.component import BuildContext
from dovetail.core.envelope import Envelope
from dovetail.plugins.registry import default_registry

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def build(kind: str, raw: dict[str, Any], project: Path) -> Any:
    spec = default_registry().get(kind, "kafka")  # type: ignore[arg-type]
    assert spec is not None
    config = spec.config.model_validate(raw, context={"project_dir": project})
    context = BuildContext(flow="test-flow", flow_version="1", project_dir=project, once=True)
    return spec.factory(config, context)


async def drain(source: Any) -> list[Envelope]:
    received: list[Envelope] = []

    async def emit(batch: list[Envelope]) -> None:
        received.extend(batch)

    await source.open()
    await asyncio.wait_for(source.run(emit), 60)
    return received


async def committed(broker: str, group: str, topic: str) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=broker, group_id=group)
    await consumer.start()
    try:
        offset: int | None = await consumer.committed(TopicPartition(topic, 0))
        return offset
    finally:
        await consumer.stop()


def test_produce_then_consume_committing_only_the_settled_prefix(
    broker: str, tmp_path: Path
) -> None:
    topic = f"orders-{uuid.uuid4().hex[:12]}"
    group = f"group-{uuid.uuid4().hex[:12]}"
    connection = {"bootstrap_servers": [broker]}

    async def scenario() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker)
        await admin.start()
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        try:
            # this broker has no idempotent-producer support: the test turns it off
            sink = build(
                "sink", {**connection, "topic": topic, "key": "id", "idempotence": False}, tmp_path
            )
            await sink.open()
            batch = [
                Envelope(payload={"id": i}, settlement=Settlement(), correlation_id=TRACE_ID)
                for i in range(6)
            ]
            assert await sink.write(batch) == [None] * 6
            await sink.close()

            raw = {
                **connection,
                "topics": [topic],
                "group_id": group,
                "poll_timeout": 0.2,
                "session_timeout": 6,
            }
            source = build("source", raw, tmp_path)
            first = await drain(source)
            assert [e.payload for e in first] == [{"id": i} for i in range(6)]
            assert [e.position.offset for e in first if e.position] == list(range(6))
            assert {e.correlation_id for e in first} == {TRACE_ID}
            assert first[2].headers["kafka-key"] == "2"
            for index in (0, 1, 3, 4):  # 2 and 5 are still in flight when the worker dies
                await first[index].settlement.settle()
            await source.commit()
            assert await committed(broker, group, topic) == 2
            await source.close()

            again = build("source", raw, tmp_path)
            second = await drain(again)
            assert [e.payload["id"] for e in second] == [2, 3, 4, 5]
            for envelope in second:
                await envelope.settlement.settle()
            await again.close()
            assert await committed(broker, group, topic) == 6
        finally:
            await admin.delete_topics([topic])
            await admin.close()

    asyncio.run(scenario())
