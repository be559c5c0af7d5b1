"""No acknowledged webhook is lost while the receiving ``dovetail run`` is killed over and over.

A sender posts HMAC-signed messages to the ``http`` source for as long as the kills go on,
and resends each one until it gets ``202`` (connection refused while the process is down, a
reset when it dies mid-request), re-signing every attempt as real webhook senders do. The
flow upserts into a SQLite table with a trigger that counts writes. At the end every
acknowledged message is in the table exactly once, and the durable inbox is empty.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest

from dovetail.connectors.http.signature import sign
from dovetail.testing.crash import CrashHarness, dovetail_executable, inbox_drained, listening

MAX_MESSAGES = 8_000
MIN_MESSAGES = 1_000
SENDERS = 4
RATE_PER_SENDER = 15.0  # messages per second and sender thread
KILLS = 20
SECRET = "whsec-crash-test"
FLOW_NAME = "webhook-to-table"

FLOW = f"""\
flow: {FLOW_NAME}
version: 1.0.0
source:
  http:
    port: ${{env:WEBHOOK_PORT}}
    path: /hooks/orders
    signature: {{secret: "${{secret:WEBHOOK_SECRET}}"}}
    batch_size: 100
steps:
  - map:
      jsonata: '{{"order_id": order_id, "amount": amount}}'
sink:
  sql:
    url: sqlite:///data/out.db
    init_sql: sql/init.sql
    table: orders
    mode: upsert
    key: [order_id]
delivery:
  idempotency_key: order_id
runtime: {{batch_size: 100, workers: 2}}
"""

INIT_SQL = (
    "CREATE TABLE IF NOT EXISTS orders (order_id TEXT PRIMARY KEY, amount INTEGER);"
    "CREATE TABLE IF NOT EXISTS writes (n INTEGER);"
    "CREATE TRIGGER IF NOT EXISTS count_insert AFTER INSERT ON orders"
    " BEGIN INSERT INTO writes VALUES (1); END;"
    "CREATE TRIGGER IF NOT EXISTS count_update AFTER UPDATE ON orders"
    " BEGIN INSERT INTO writes VALUES (1); END;"
)


def make_project(root: Path) -> None:
    (root / "flows").mkdir(parents=True)
    (root / "sql").mkdir()
    (root / "data").mkdir()
    (root / "dovetail.yaml").write_text("project: crash-webhook\n")
    (root / "flows" / f"{FLOW_NAME}.yaml").write_text(FLOW)
    (root / "sql" / "init.sql").write_text(INIT_SQL)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Sender:
    """Posts signed messages from a few threads, each resending until it gets 202.

    New messages keep coming (at a steady rate, catching up after an outage) until ``stop()``;
    the message being sent then is still resent until it is accepted.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.accepted: list[str] = []
        self.attempts = 0
        self.failures = 0
        self.errors: list[str] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        keys = [f"W-{n:05d}" for n in range(MAX_MESSAGES)]
        self._threads = [
            threading.Thread(target=self._send_share, args=(keys[n::SENDERS],), daemon=True)
            for n in range(SENDERS)
        ]

    def stop(self) -> None:
        self._stopping.set()

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    @property
    def done(self) -> bool:
        return not any(thread.is_alive() for thread in self._threads)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _send_share(self, keys: list[str]) -> None:
        started = time.monotonic()
        with httpx.Client(timeout=5.0) as client:
            for count, key in enumerate(keys):
                pause = started + count / RATE_PER_SENDER - time.monotonic()
                if self._stopping.wait(max(0.0, pause)):
                    return
                if not self._deliver(client, key):
                    return

    def _deliver(self, client: httpx.Client, key: str) -> bool:
        body = orjson.dumps({"order_id": key, "amount": int(key[2:])})
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            stamp = str(int(time.time()))
            headers = {"x-timestamp": stamp, "x-signature": sign(SECRET.encode(), stamp, body)}
            with self._lock:
                self.attempts += 1
            try:
                status = client.post(self.url, content=body, headers=headers).status_code
            except httpx.TransportError:
                status = None
            if status == 202:
                with self._lock:
                    self.accepted.append(key)
                return True
            with self._lock:
                self.failures += 1
            if status == 409:  # this exact signature was stored already: re-sign next second
                time.sleep(1.0)
            elif status not in (None, 503):
                self.errors.append(f"{key}: HTTP {status}")
                return False
            else:
                time.sleep(0.05)
        self.errors.append(f"{key}: no 202 within 120 s")
        return False


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_every_acknowledged_webhook_lands_exactly_once_across_20_kills(tmp_path: Path) -> None:
    make_project(tmp_path)
    port = free_port()
    sender = Sender(f"http://127.0.0.1:{port}/hooks/orders")
    harness = CrashHarness(
        tmp_path,
        kills=KILLS,
        interval=(0.3, 1.5),  # counted from the moment the port accepts connections
        seed=20261126,
        once=False,
        env={"WEBHOOK_PORT": str(port), "WEBHOOK_SECRET": SECRET},
        ready=lambda: listening(port),
    )
    database = tmp_path / "data" / "out.db"

    def table_keys() -> list[str]:
        with sqlite3.connect(database) as db:
            return [row[0] for row in db.execute("SELECT order_id FROM orders")]

    sender.start()
    try:
        report = harness.run(
            expected=lambda: sender.accepted,
            delivered=table_keys,
            until=lambda: sender.done and inbox_drained(tmp_path, FLOW_NAME),
            after_kills=sender.stop,
        )
    finally:
        sender.stop()
        sender.join(timeout=10)
    with sqlite3.connect(database) as db:
        writes = db.execute("SELECT count(*) FROM writes").fetchone()[0]
        wrong = db.execute(
            "SELECT count(*) FROM orders WHERE amount != CAST(substr(order_id, 3) AS INTEGER)"
        ).fetchone()[0]
    print(
        f"\n{report.describe()}\nsender: {len(sender.accepted)} accepted in"
        f" {sender.attempts} attempts ({sender.failures} refused or failed); table writes {writes}"
    )

    assert sender.errors == []
    assert report.kills >= KILLS, report.describe()
    assert report.ok, report.describe()
    accepted = len(sender.accepted)
    assert MIN_MESSAGES <= accepted < MAX_MESSAGES, "the traffic did not outlast the kills"
    assert len(set(sender.accepted)) == accepted
    assert report.effects == report.delivered == report.expected == accepted
    assert sender.failures > 0, "no request ever failed: the kills missed the traffic"
    assert writes >= accepted
    assert wrong == 0
    assert inbox_drained(tmp_path, FLOW_NAME)
    listed = subprocess.run(
        [str(dovetail_executable()), "dlq", "list", "--status", "all", "--json"],
        cwd=tmp_path,
        capture_output=True,
        check=True,
    )
    assert json.loads(listed.stdout) == []
