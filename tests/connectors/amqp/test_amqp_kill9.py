"""No message is lost while a ``dovetail run`` consuming a RabbitMQ queue is killed over and over.

The queue starts with a backlog and a publisher keeps adding messages while the kills go on.
The flow upserts every message into a SQLite table (idempotency key ``order_id``). A message
is acknowledged only after its row is committed, so what a killed run held unacknowledged is
redelivered to the next run. At the end every published message is in the table, the queue
is empty (everything acknowledged) and nothing was dead-lettered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from amqp_support import AMQP_URL, QueueState, broker

from dovetail.testing.broker_crash import (
    ProducerThread,
    TableWatch,
    broker_crash,
    dead_letters,
    table_flow,
    table_project,
)

BACKLOG = 1_500
RATE = 60.0  # messages per second published during the kills
MAX_MESSAGES = 6_000
KILLS = 10
FLOW_NAME = "amqp-to-table"

FLOW = table_flow(
    FLOW_NAME,
    source="""\
amqp:
  url: ${env:AMQP_URL}
  queue: ${env:AMQP_QUEUE}
  prefetch: 100
  batch_size: 25
  batch_timeout: 50ms
""",
    table="orders",
    key="order_id",
    idempotency_key="order_id",
    runtime="{batch_size: 25, workers: 2, drain_timeout: 10s}",
)

INIT_SQL = "CREATE TABLE IF NOT EXISTS orders (order_id TEXT PRIMARY KEY, amount INTEGER);"


class Publisher(ProducerThread):
    """Publishes numbered orders (confirmed) at a steady rate until stopped."""

    def __init__(self, queue: str, backlog: list[str]) -> None:
        super().__init__()
        self.queue = queue
        self.next = len(backlog)
        self.sent.extend(backlog)  # already in the queue

    def produce(self) -> None:
        asyncio.run(self._publish())

    async def _publish(self) -> None:
        started = time.monotonic()
        async with broker() as client:
            sent = 0
            while not self.stopping.is_set() and self.next < MAX_MESSAGES:
                await asyncio.sleep(max(0.0, started + sent / RATE - time.monotonic()))
                keys = [f"Q-{n:05d}" for n in range(self.next, self.next + 10)]
                await client.publish(self.queue, [order(key) for key in keys])
                self.sent.extend(keys)
                self.next += 10
                sent += 10


def order(key: str) -> dict[str, object]:
    return {"order_id": key, "amount": int(key[2:])}


def queue_state(queue: str) -> QueueState:
    async def check() -> QueueState:
        async with broker() as client:
            return await client.state(queue)

    return anyio.run(check)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_no_message_is_lost_across_kill_9_of_a_consuming_run(
    tmp_path: Path, names: Callable[[str], str]
) -> None:
    queue = names("kill9")
    backlog = [f"Q-{n:05d}" for n in range(BACKLOG)]

    async def arrange() -> None:
        async with broker() as client:
            await client.declare(queue)
            await client.publish(queue, [order(key) for key in backlog])

    anyio.run(arrange)
    publisher = Publisher(queue, backlog)
    table = TableWatch(table_project(tmp_path, FLOW, INIT_SQL), "orders", "order_id")

    def drained() -> bool:
        """The queue is empty and the final run is consuming (ready for its SIGTERM)."""
        state = queue_state(queue)
        return bool(state.ready == 0 and state.consumers > 0)

    report = broker_crash(
        tmp_path,
        producer=publisher,
        table=table,
        env={"AMQP_URL": AMQP_URL, "AMQP_QUEUE": queue},
        kills=KILLS,
        interval=(0.2, 0.8),  # counted from the moment rows start arriving
        drained=drained,
    )
    print(f"\n{report.describe()}; published {len(publisher.sent)}")

    assert publisher.errors == []
    assert report.kills >= KILLS, report.describe()
    assert report.ok, report.describe()
    assert report.expected == len(publisher.sent) > BACKLOG
    final = queue_state(queue)
    assert final.ready == 0 and final.consumers == 0, "every message acknowledged"
    assert dead_letters(tmp_path) == []
