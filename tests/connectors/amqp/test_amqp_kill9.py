"""No message is lost while a ``dovetail run`` consuming a RabbitMQ queue is killed over and over.

The queue starts with a backlog and a publisher keeps adding messages while the kills go on.
The flow upserts every message into a SQLite table (idempotency key ``order_id``). A message
is acknowledged only after its row is committed, so what a killed run held unacknowledged is
redelivered to the next run. At the end every published message is in the table, the queue
is empty (everything acknowledged) and nothing was dead-lettered.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from amqp_support import AMQP_URL, QueueState, broker

from dovetail.testing.crash import CrashHarness, dovetail_executable

BACKLOG = 1_500
RATE = 60.0  # messages per second published during the kills
MAX_MESSAGES = 6_000
KILLS = 10
FLOW_NAME = "amqp-to-table"

FLOW = f"""\
flow: {FLOW_NAME}
version: 1.0.0
source:
  amqp:
    url: ${{env:AMQP_URL}}
    queue: ${{env:AMQP_QUEUE}}
    prefetch: 100
    batch_size: 25
    batch_timeout: 50ms
sink:
  sql:
    url: sqlite:///data/out.db
    init_sql: sql/init.sql
    table: orders
    mode: upsert
    key: [order_id]
delivery:
  idempotency_key: order_id
runtime: {{batch_size: 25, workers: 2, drain_timeout: 10s}}
"""

INIT_SQL = "CREATE TABLE IF NOT EXISTS orders (order_id TEXT PRIMARY KEY, amount INTEGER);"


def make_project(root: Path) -> None:
    for folder in ("flows", "sql", "data"):
        (root / folder).mkdir(parents=True)
    (root / "dovetail.yaml").write_text("project: crash-amqp\n")
    (root / "flows" / f"{FLOW_NAME}.yaml").write_text(FLOW)
    (root / "sql" / "init.sql").write_text(INIT_SQL)


class Publisher(threading.Thread):
    """Publishes numbered orders (confirmed) at a steady rate until stopped."""

    def __init__(self, queue: str, first: int) -> None:
        super().__init__(daemon=True)
        self.queue = queue
        self.next = first
        self.published: list[str] = []
        self.error: BaseException | None = None
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def finish(self) -> None:
        """Stop publishing and wait for the last confirms."""
        self.stop()
        self.join(10)

    def run(self) -> None:
        try:
            asyncio.run(self._publish())
        except BaseException as exc:  # reported by the test
            self.error = exc

    async def _publish(self) -> None:
        started = time.monotonic()
        async with broker() as client:
            sent = 0
            while not self._stopping.is_set() and self.next < MAX_MESSAGES:
                await asyncio.sleep(max(0.0, started + sent / RATE - time.monotonic()))
                keys = [f"Q-{n:05d}" for n in range(self.next, self.next + 10)]
                await client.publish(self.queue, [order(key) for key in keys])
                self.published.extend(keys)
                self.next += 10
                sent += 10


def order(key: str) -> dict[str, object]:
    return {"order_id": key, "amount": int(key[2:])}


def queue_state(queue: str) -> QueueState:
    async def check() -> QueueState:
        async with broker() as client:
            return await client.state(queue)

    return anyio.run(check)


def query(database: Path, sql: str) -> list[tuple[object, ...]]:
    try:
        with sqlite3.connect(database, timeout=1.0) as db:
            return list(db.execute(sql))
    except sqlite3.OperationalError:  # not created yet, or busy for a moment
        return []


def row_count(database: Path) -> int:
    rows = query(database, "SELECT count(*) FROM orders")
    return int(str(rows[0][0])) if rows else 0


def table_keys(database: Path) -> list[str]:
    return [str(row[0]) for row in query(database, "SELECT order_id FROM orders")]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_no_message_is_lost_across_kill_9_of_a_consuming_run(
    tmp_path: Path, names: Callable[[str], str]
) -> None:
    queue = names("kill9")
    make_project(tmp_path)
    backlog = [f"Q-{n:05d}" for n in range(BACKLOG)]

    async def arrange() -> None:
        async with broker() as client:
            await client.declare(queue)
            await client.publish(queue, [order(key) for key in backlog])

    anyio.run(arrange)
    publisher = Publisher(queue, first=BACKLOG)
    database = tmp_path / "data" / "out.db"
    harness = CrashHarness(
        tmp_path,
        kills=KILLS,
        interval=(0.2, 0.8),  # counted from the moment rows start arriving
        seed=20261129,
        once=False,
        env={"AMQP_URL": AMQP_URL, "AMQP_QUEUE": queue},
        activity=lambda: row_count(database),
    )

    def drained() -> bool:
        """All rows are in and the final run is consuming (so it is ready for SIGTERM)."""
        if publisher.is_alive() or row_count(database) < BACKLOG + len(publisher.published):
            return False
        state = queue_state(queue)
        return bool(state.ready == 0 and state.consumers > 0)

    publisher.start()
    try:
        report = harness.run(
            expected=lambda: backlog + publisher.published,
            delivered=lambda: table_keys(database),
            until=drained,
            after_kills=publisher.finish,
        )
    finally:
        publisher.stop()
        publisher.join(10)
    print(f"\n{report.describe()}; published {BACKLOG + len(publisher.published)}")

    assert publisher.error is None
    assert report.kills >= KILLS, report.describe()
    assert report.ok, report.describe()
    assert report.expected == BACKLOG + len(publisher.published) > BACKLOG
    final = queue_state(queue)
    assert final.ready == 0 and final.consumers == 0, "every message acknowledged"
    listed = subprocess.run(
        [str(dovetail_executable()), "dlq", "list", "--status", "all", "--json"],
        cwd=tmp_path,
        capture_output=True,
        check=True,
    )
    assert json.loads(listed.stdout) == []
