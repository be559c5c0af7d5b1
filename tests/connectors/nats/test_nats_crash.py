"""No JetStream message is lost while the consuming ``dovetail run`` is killed over and over.

A publisher keeps adding orders to a stream (each confirmed by its PubAck) while a real
``dovetail run`` consumes them into a SQLite upsert table and is SIGKILLed at random moments.
Messages delivered but not yet acked when a process dies come back after ``ack_wait``; the
idempotency keys stop a second write of what was already delivered. At the end every
published order is in the table with the right values, and the consumer has nothing pending.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
import orjson
import pytest
from nats_support import JetStream, create_stream, delete_stream
from tests.conftest import require_service

from dovetail.testing.broker_crash import (
    ProducerThread,
    TableWatch,
    broker_crash,
    dead_letters,
    table_flow,
    table_project,
)

MESSAGES = 3_000
RATE = 60.0  # orders per second while the kills go on (outlasting them); the rest at once
HELD_BACK = 50  # published only once the kills are over, so the last run has work to do
KILLS = 10
FLOW_NAME = "nats-to-table"
DURABLE = "orders-table"

FLOW = table_flow(
    FLOW_NAME,
    source=f"""\
nats:
  url: ${{env:NATS_URL}}
  stream: ${{env:NATS_STREAM}}
  subject: ${{env:NATS_SUBJECT}}
  durable: {DURABLE}
  ack_wait: 2s
  fetch_timeout: 1s
  max_deliver: 50
""",
    steps="""- map: {jsonata: '{"order_id": order_id, "amount": amount}'}""",
    table="orders",
    key="order_id",
    idempotency_key="order_id",
    runtime="{batch_size: 50, workers: 2}",
)

INIT_SQL = (
    "CREATE TABLE IF NOT EXISTS orders (order_id TEXT PRIMARY KEY, amount INTEGER);"
    "CREATE TABLE IF NOT EXISTS writes (n INTEGER);"
    "CREATE TRIGGER IF NOT EXISTS count_insert AFTER INSERT ON orders"
    " BEGIN INSERT INTO writes VALUES (1); END;"
    "CREATE TRIGGER IF NOT EXISTS count_update AFTER UPDATE ON orders"
    " BEGIN INSERT INTO writes VALUES (1); END;"
)


class Publisher(ProducerThread):
    """Publishes ``MESSAGES`` orders: at ``RATE`` until the kills are over (``stopping``), then
    the rest at once.

    The last ``HELD_BACK`` wait for the end of the kills: the final run must consume them, so
    it is up (its signal handlers installed) before the harness sends it SIGTERM. ``sent``
    holds the keys whose PubAck arrived.
    """

    def __init__(self, js: JetStream) -> None:
        super().__init__()
        self.js = js

    def produce(self) -> None:
        anyio.run(self._publish)

    async def _publish(self) -> None:
        import nats

        client = await nats.connect(self.js.url)
        try:
            js = client.jetstream()
            started = anyio.current_time()
            for n in range(MESSAGES):
                if n == MESSAGES - HELD_BACK:
                    await anyio.to_thread.run_sync(self.stopping.wait)
                if not self.stopping.is_set():
                    await anyio.sleep(max(0.0, started + n / RATE - anyio.current_time()))
                key = f"N-{n:05d}"
                body = orjson.dumps({"order_id": key, "amount": n})
                try:
                    await js.publish(self.js.subject("orders"), body, timeout=10)
                except Exception as exc:
                    self.errors.append(f"{key}: {exc!r}")
                    return
                self.sent.append(key)
        finally:
            await client.close()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_every_published_message_reaches_the_table_across_10_kills(tmp_path: Path) -> None:
    require_service("NATS", "127.0.0.1", 4222)
    token = uuid.uuid4().hex[:12]
    js = JetStream(url="nats://127.0.0.1:4222", stream=f"CRASH_{token}", prefix=f"crash{token}")
    anyio.run(create_stream, js.url, js.stream, js.prefix)
    table = TableWatch(table_project(tmp_path, FLOW, INIT_SQL), "orders", "order_id")
    publisher = Publisher(js)

    def writes() -> int:
        rows = table.query("SELECT count(*) FROM writes")
        return int(str(rows[0][0])) if rows else 0

    try:
        report = broker_crash(
            tmp_path,
            producer=publisher,
            table=table,
            env={"NATS_URL": js.url, "NATS_STREAM": js.stream, "NATS_SUBJECT": f"{js.prefix}.>"},
            kills=KILLS,
            interval=(0.2, 1.0),  # counted from the moment rows are being written
            activity=writes,
            start_timeout=4.0,
        )
        info = anyio.run(js.consumer_info, DURABLE)
    finally:
        publisher.stop()
        anyio.run(delete_stream, js.url, js.stream)
    wrong = table.query(
        "SELECT count(*) FROM orders WHERE amount != CAST(substr(order_id, 3) AS INT)"
    )
    total_writes = writes()
    print(f"\n{report.describe()}\ntable writes {total_writes}")

    assert publisher.errors == []
    assert len(publisher.sent) == MESSAGES
    assert report.kills >= KILLS, report.describe()
    assert report.ok, report.describe()
    assert report.delivered == MESSAGES
    assert total_writes >= MESSAGES
    assert wrong == [(0,)]
    # the last run stopped cleanly: everything it received was acked
    assert (info.num_pending, info.num_ack_pending) == (0, 0)
    assert dead_letters(tmp_path) == []
