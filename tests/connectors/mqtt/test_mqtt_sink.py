"""The mqtt sink against a real Mosquitto: confirmed QoS 1 publishes, topics, retain, failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from mqtt_support import HOST, PORT, Names, clear_retained, subscribed

from dovetail.connectors.mqtt.sink import MqttSink
from dovetail.core.ack import Settlement
from dovetail.core.envelope import Envelope
from dovetail.errors import MappingFailed, TransientError
from dovetail.testing.components import build_component


def envelope(payload: Any, key: str | None = None) -> Envelope:
    headers = {"idempotency-key": key} if key is not None else {}
    return Envelope(payload=payload, settlement=Settlement(), headers=headers)


def sink(project: Path, snippet: str) -> MqttSink:
    if "port:" not in snippet:  # the test broker, unless the test names another
        snippet = snippet.replace("mqtt: {", f"mqtt: {{host: '{HOST}', port: {PORT}, ", 1)
    built: MqttSink = build_component("sink", snippet, project)
    return built


async def write(target: MqttSink, batch: list[Envelope]) -> list[BaseException | None]:
    await target.open()
    try:
        return await target.write(batch)
    finally:
        await target.close()


def test_every_publish_is_confirmed_and_arrives_once(project: Path, names: Names) -> None:
    topic = names.topic("out")
    batch = [envelope({"n": n}) for n in range(50)]

    async def main() -> None:
        async with subscribed(topic) as subscriber:
            assert await write(sink(project, f"mqtt: {{topic: '{topic}'}}"), batch) == [None] * 50
            received = await subscriber.collect(50)
            assert [orjson.loads(m.payload) for m in received] == [{"n": n} for n in range(50)]
            assert {m.qos for m in received} == {1}

    anyio.run(main)


def test_mqtt5_publishes_carry_trace_user_properties(project: Path, names: Names) -> None:
    topic = names.topic("traced")
    message = envelope({"n": 1}, key="K-1")

    async def main() -> None:
        async with subscribed(topic, protocol=5) as subscriber:
            target = sink(project, f"mqtt: {{topic: '{topic}', protocol: 5}}")
            assert await write(target, [message]) == [None]
            (received,) = await subscriber.collect(1)
        properties = dict(received.properties.UserProperty)  # type: ignore[union-attr]
        assert properties["x-correlation-id"] == message.correlation_id
        assert properties["traceparent"].startswith(f"00-{message.correlation_id}-")
        assert properties["idempotency-key"] == "K-1"
        assert received.properties.ContentType == "application/json"  # type: ignore[union-attr]

    anyio.run(main)


def test_a_topic_expression_picks_each_topic_and_dead_letters_invalid_ones(
    project: Path, names: Names
) -> None:
    base = names.topic("plants")
    snippet = f"mqtt: {{topic_expression: \"'{base}/' & plant\", format: text}}"
    batch = [envelope({"plant": "p1"}), envelope({"plant": "+"})]

    async def main() -> None:
        async with subscribed(f"{base}/#") as subscriber:
            results = await write(sink(project, snippet), batch)
            (received,) = await subscriber.collect(1)
            results += await write(
                sink(project, "mqtt: {topic_expression: target}"), [envelope({"other": 1})]
            )
        assert results[0] is None
        assert isinstance(results[1], MappingFailed)
        assert "wildcards" in results[1].reason
        assert isinstance(results[2], MappingFailed)
        assert received.topic.value == f"{base}/p1"
        assert orjson.loads(received.payload) == {"plant": "p1"}

    anyio.run(main)


def test_retained_messages_reach_later_subscribers(project: Path, names: Names) -> None:
    topic = names.topic("state")

    async def main() -> None:
        target = sink(project, f"mqtt: {{topic: '{topic}', retain: true, format: text}}")
        assert await write(target, [envelope("running")]) == [None]
        try:
            async with subscribed(topic) as late:
                (received,) = await late.collect(1)
            assert (received.payload, received.retain) == (b"running", True)
        finally:
            await clear_retained(topic)

    anyio.run(main)


def test_an_unreachable_broker_is_a_transient_failure(project: Path) -> None:
    target = sink(project, "mqtt: {topic: a/b, port: 1, timeout: 1s}")
    results = anyio.run(write, target, [envelope({"n": 1}), envelope({"n": 2})])
    assert all(isinstance(r, TransientError) for r in results)


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("mqtt: {}", "exactly one of"),
        ("mqtt: {topic: a/b, topic_expression: x}", "exactly one of"),
        ("mqtt: {topic: a/#}", "wildcards"),
        ("mqtt: {topic_expression: 'a &'}", "JSONata"),
        ("mqtt: {topic: a/b, qos: 0}", "qos"),
    ],
)
def test_invalid_sink_settings_are_refused(project: Path, snippet: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sink(project, snippet)
