"""No MQTT message is lost while the subscribing ``dovetail run`` is killed (SIGKILL) ten times.

A publisher sends QoS 1 messages at a steady rate for as long as the kills go on; the flow
subscribes on a persistent session and upserts each message into a SQLite table. While the
process is down the broker queues the messages for the session; messages received but not
acknowledged when it dies are sent again when the session resumes. At the end every
confirmed publish is in the table and nothing is left for the session.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import anyio
import orjson
import pytest
from mqtt_support import HOST, PORT, Names

from dovetail.testing.broker_crash import (
    ProducerThread,
    TableWatch,
    broker_crash,
    dead_letters,
    table_flow,
    table_project,
)

KILLS = 10
RATE = 50.0  # messages per second
TAIL = 50  # published after the kills, so the final run has work before it is stopped
BACKLOG = 500  # Mosquitto queues at most 1000 messages for an offline session, then drops
MAX_MESSAGES = 20_000
FLOW_NAME = "mqtt-to-table"

FLOW = table_flow(
    FLOW_NAME,
    source="""\
mqtt:
  host: ${env:CRASH_HOST}
  port: ${env:CRASH_PORT}
  topics: ["${env:CRASH_TOPIC}"]
  client_id: ${env:CRASH_CLIENT_ID}
""",
    steps="""- map: {jsonata: '{"message_key": key, "amount": amount}'}""",
    table="readings",
    key="message_key",
    idempotency_key="key",
)

INIT_SQL = "CREATE TABLE IF NOT EXISTS readings (message_key TEXT PRIMARY KEY, amount INTEGER);"


class Publisher(ProducerThread):
    """Publishes QoS 1 messages at ``RATE`` per second from a thread until ``stop()``.

    ``sent`` holds the keys the broker acknowledged (PUBACK). Publishing pauses while
    more than ``BACKLOG`` messages wait for the flow, so the broker never reaches its queue
    limit for the offline session (``max_queued_messages``) and drops messages itself.
    """

    def __init__(self, topic: str, consumed: Callable[[], int]) -> None:
        super().__init__()
        self.topic = topic
        self.consumed = consumed

    def produce(self) -> None:
        anyio.run(self._publish)

    def send_tail(self) -> None:
        """Publish ``TAIL`` more messages at once."""
        start = len(self.sent) + 1_000_000

        async def tail() -> None:
            async with aiomqtt.Client(HOST, PORT) as client:
                for number in range(start, start + TAIL):
                    key = f"M-{number}"
                    body = orjson.dumps({"key": key, "amount": number})
                    await client.publish(self.topic, body, qos=1)
                    self.sent.append(key)

        anyio.run(tail)

    async def _publish(self) -> None:
        try:
            async with aiomqtt.Client(HOST, PORT) as client:
                started = time.monotonic()
                for number in range(MAX_MESSAGES):
                    pause = started + number / RATE - time.monotonic()
                    await anyio.sleep(max(0.0, pause))
                    while number - self.consumed() > BACKLOG and not self.stopping.is_set():
                        await anyio.sleep(0.1)
                        started += 0.1
                    if self.stopping.is_set():
                        return
                    key = f"M-{number:05d}"
                    body = orjson.dumps({"key": key, "amount": number})
                    await client.publish(self.topic, body, qos=1)
                    self.sent.append(key)
        except aiomqtt.MqttError as exc:
            self.errors.append(str(exc))


async def open_session(client_id: str, topic: str) -> None:
    """Create the persistent session and its subscription, as the flow's first start would."""
    async with aiomqtt.Client(HOST, PORT, identifier=client_id, clean_session=False) as client:
        await client.subscribe(topic, qos=1)


async def left_in_session(client_id: str, topic: str) -> int:
    """Messages the broker still holds for the session (sent again on connect)."""
    client = aiomqtt.Client(HOST, PORT, identifier=client_id, clean_session=False)
    client._client.manual_ack_set(True)  # look, do not take
    count = 0
    async with client:
        await client.subscribe(topic, qos=1)
        with anyio.move_on_after(1.5):
            async for _ in client.messages:
                count += 1
    return count


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_no_message_is_lost_across_ten_kills(tmp_path: Path, names: Names) -> None:
    topic, client_id = names.topic("crash"), names.client_id("crash")
    table = TableWatch(table_project(tmp_path, FLOW, INIT_SQL), "readings", "message_key")
    anyio.run(open_session, client_id, topic)
    publisher = Publisher(topic, table.count)
    report = broker_crash(
        tmp_path,
        producer=publisher,
        table=table,
        env={
            "CRASH_TOPIC": topic,
            "CRASH_CLIENT_ID": client_id,
            "CRASH_HOST": HOST,
            "CRASH_PORT": str(PORT),
        },
        kills=KILLS,
        interval=(0.3, 1.0),
        finish_timeout=90,
    )
    print(f"\n{report.describe()}; published {len(publisher.sent)}")

    assert publisher.errors == []
    assert report.kills >= KILLS, report.describe()
    assert report.ok, report.describe()
    assert len(publisher.sent) >= 600, "the traffic did not outlast the kills"
    assert anyio.run(left_in_session, client_id, topic) == 0
    assert dead_letters(tmp_path) == []
