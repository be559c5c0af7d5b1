"""No MQTT message is lost while the subscribing ``dovetail run`` is killed (SIGKILL) ten times.

A publisher sends QoS 1 messages at a steady rate for as long as the kills go on; the flow
subscribes on a persistent session and upserts each message into a SQLite table. While the
process is down the broker queues the messages for the session; messages received but not
acknowledged when it dies are sent again when the session resumes. At the end every
confirmed publish is in the table and nothing is left for the session.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import anyio
import orjson
import pytest
from mqtt_support import HOST, PORT, Names

from dovetail.testing.crash import CrashHarness, dovetail_executable

KILLS = 10
RATE = 50.0  # messages per second
TAIL = 50  # published after the kills, so the final run has work before it is stopped
BACKLOG = 500  # Mosquitto queues at most 1000 messages for an offline session, then drops
MAX_MESSAGES = 20_000
FLOW_NAME = "mqtt-to-table"

FLOW = f"""\
flow: {FLOW_NAME}
version: 1.0.0
source:
  mqtt:
    host: ${{env:CRASH_HOST}}
    port: ${{env:CRASH_PORT}}
    topics: ["${{env:CRASH_TOPIC}}"]
    client_id: ${{env:CRASH_CLIENT_ID}}
steps:
  - map:
      jsonata: '{{"message_key": key, "amount": amount}}'
sink:
  sql:
    url: sqlite:///data/out.db
    init_sql: sql/init.sql
    table: readings
    mode: upsert
    key: [message_key]
delivery:
  idempotency_key: key
runtime: {{batch_size: 100, workers: 2}}
"""

INIT_SQL = "CREATE TABLE IF NOT EXISTS readings (message_key TEXT PRIMARY KEY, amount INTEGER);"


class Publisher:
    """Publishes QoS 1 messages at ``RATE`` per second from a thread until ``stop()``.

    ``confirmed`` holds the keys the broker acknowledged (PUBACK). Publishing pauses while
    more than ``BACKLOG`` messages wait for the flow, so the broker never reaches its queue
    limit for the offline session (``max_queued_messages``) and drops messages itself.
    """

    def __init__(self, topic: str, consumed: Callable[[], int]) -> None:
        self.topic = topic
        self.consumed = consumed
        self.confirmed: list[str] = []
        self.errors: list[str] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=lambda: anyio.run(self._publish), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)

    def finish(self) -> None:
        """Stop the steady traffic, then publish ``TAIL`` more messages at once."""
        self.stop()
        start = len(self.confirmed) + 1_000_000

        async def tail() -> None:
            async with aiomqtt.Client(HOST, PORT) as client:
                for number in range(start, start + TAIL):
                    key = f"M-{number}"
                    body = orjson.dumps({"key": key, "amount": number})
                    await client.publish(self.topic, body, qos=1)
                    self.confirmed.append(key)

        anyio.run(tail)

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    async def _publish(self) -> None:
        try:
            async with aiomqtt.Client(HOST, PORT) as client:
                started = time.monotonic()
                for number in range(MAX_MESSAGES):
                    pause = started + number / RATE - time.monotonic()
                    await anyio.sleep(max(0.0, pause))
                    while number - self.consumed() > BACKLOG and not self._stopping.is_set():
                        await anyio.sleep(0.1)
                        started += 0.1
                    if self._stopping.is_set():
                        return
                    key = f"M-{number:05d}"
                    body = orjson.dumps({"key": key, "amount": number})
                    await client.publish(self.topic, body, qos=1)
                    self.confirmed.append(key)
        except aiomqtt.MqttError as exc:
            self.errors.append(str(exc))


def table_keys(database: Path) -> list[str]:
    if not database.exists():
        return []
    try:
        with sqlite3.connect(database, timeout=0.2) as db:
            return [row[0] for row in db.execute("SELECT message_key FROM readings")]
    except sqlite3.OperationalError:  # locked by the writer, or the table not created yet
        return []


def counter(database: Path) -> Callable[[], int]:
    """Rows in the table so far (the last known count while the writer holds the lock)."""
    last = [0]

    def count() -> int:
        if database.exists():
            try:
                with sqlite3.connect(database, timeout=0.2) as db:
                    last[0] = max(
                        last[0], db.execute("SELECT count(*) FROM readings").fetchone()[0]
                    )
            except sqlite3.OperationalError:
                pass
        return last[0]

    return count


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
    (tmp_path / "flows").mkdir()
    (tmp_path / "sql").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "dovetail.yaml").write_text("project: crash-mqtt\n")
    (tmp_path / "flows" / f"{FLOW_NAME}.yaml").write_text(FLOW)
    (tmp_path / "sql" / "init.sql").write_text(INIT_SQL)
    database = tmp_path / "data" / "out.db"
    anyio.run(open_session, client_id, topic)
    consumed = counter(database)
    publisher = Publisher(topic, consumed)
    harness = CrashHarness(
        tmp_path,
        kills=KILLS,
        interval=(0.3, 1.0),
        seed=20261129,
        once=False,
        env={
            "CRASH_TOPIC": topic,
            "CRASH_CLIENT_ID": client_id,
            "CRASH_HOST": HOST,
            "CRASH_PORT": str(PORT),
        },
        activity=consumed,
        finish_timeout=90,
    )

    def drained() -> bool:
        return publisher.done and len(table_keys(database)) >= len(publisher.confirmed)

    publisher.start()
    try:
        report = harness.run(
            expected=lambda: publisher.confirmed,
            delivered=lambda: table_keys(database),
            until=drained,
            after_kills=publisher.finish,
        )
    finally:
        publisher.stop()
    print(f"\n{report.describe()}; published {len(publisher.confirmed)}")

    assert publisher.errors == []
    assert report.kills >= KILLS, report.describe()
    assert report.ok, report.describe()
    assert len(publisher.confirmed) >= 600, "the traffic did not outlast the kills"
    assert anyio.run(left_in_session, client_id, topic) == 0
    listed = subprocess.run(
        [str(dovetail_executable()), "dlq", "list", "--status", "all", "--json"],
        cwd=tmp_path,
        capture_output=True,
        check=True,
    )
    assert json.loads(listed.stdout) == []
