"""No stream entry is lost while the consuming ``dovetail run`` is killed (SIGKILL) ten times.

A producer appends entries to a stream at a steady rate for as long as the kills go on; the
flow reads them through a consumer group and upserts them into a SQLite table. Every kill
leaves entries read but not acknowledged in the consumer's pending list; each restart reads
them again first. At the end every appended entry is in the table, nothing is pending, and
the dead-letter queue is empty.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from dovetail.testing.crash import CrashHarness, dovetail_executable

KILLS = 10
RATE = 50.0  # entries per second
MAX_ENTRIES = 20_000
TAIL = 50  # appended after the kills, so the final run has work before it is stopped
FLOW_NAME = "stream-to-table"

FLOW = f"""\
flow: {FLOW_NAME}
version: 1.0.0
source:
  redis: {{stream: "${{env:CRASH_STREAM}}", group: crash, consumer: worker-1, block: 200ms}}
steps:
  - map:
      jsonata: '{{"entry_key": key, "amount": amount}}'
sink:
  sql:
    url: sqlite:///data/out.db
    init_sql: sql/init.sql
    table: entries
    mode: upsert
    key: [entry_key]
delivery:
  idempotency_key: key
runtime: {{batch_size: 100, workers: 2}}
"""

INIT_SQL = "CREATE TABLE IF NOT EXISTS entries (entry_key TEXT PRIMARY KEY, amount INTEGER);"


class Producer:
    """Appends entries at ``RATE`` per second from a thread until ``stop()``."""

    def __init__(self, rdb: Any, stream: str) -> None:
        self.rdb = rdb
        self.stream = stream
        self.appended: list[str] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._produce, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)

    def finish(self) -> None:
        """Stop the steady traffic, then append ``TAIL`` more entries at once."""
        self.stop()
        start = len(self.appended) + 1_000_000
        for number in range(start, start + TAIL):
            key = f"E-{number}"
            self.rdb.xadd(self.stream, {"payload": orjson.dumps({"key": key, "amount": number})})
            self.appended.append(key)

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def _produce(self) -> None:
        started = time.monotonic()
        for number in range(MAX_ENTRIES):
            pause = started + number / RATE - time.monotonic()
            if self._stopping.wait(max(0.0, pause)):
                return
            key = f"E-{number:05d}"
            self.rdb.xadd(self.stream, {"payload": orjson.dumps({"key": key, "amount": number})})
            self.appended.append(key)


def table_keys(database: Path) -> list[str]:
    if not database.exists():
        return []
    try:
        with sqlite3.connect(database, timeout=0.2) as db:
            return [row[0] for row in db.execute("SELECT entry_key FROM entries")]
    except sqlite3.OperationalError:  # locked by the writer, or the table not created yet
        return []


def counter(database: Path) -> Callable[[], int]:
    last = 0

    def count() -> int:
        nonlocal last
        last = max(last, len(table_keys(database)))
        return last

    return count


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_no_entry_is_lost_across_ten_kills(
    tmp_path: Path, rdb: Any, streams: Callable[[str], str]
) -> None:
    stream = streams("crash")
    (tmp_path / "flows").mkdir()
    (tmp_path / "sql").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "dovetail.yaml").write_text("project: crash-redis\n")
    (tmp_path / "flows" / f"{FLOW_NAME}.yaml").write_text(FLOW)
    (tmp_path / "sql" / "init.sql").write_text(INIT_SQL)
    database = tmp_path / "data" / "out.db"
    producer = Producer(rdb, stream)
    harness = CrashHarness(
        tmp_path,
        kills=KILLS,
        interval=(0.3, 1.0),
        seed=20261129,
        once=False,
        env={"CRASH_STREAM": stream},
        activity=counter(database),
    )

    def drained() -> bool:
        if not producer.done:
            return False
        return len(table_keys(database)) >= len(producer.appended)

    producer.start()
    try:
        report = harness.run(
            expected=lambda: producer.appended,
            delivered=lambda: table_keys(database),
            until=drained,
            after_kills=producer.finish,
        )
    finally:
        producer.stop()
    print(f"\n{report.describe()}; appended {len(producer.appended)}")

    assert report.kills >= KILLS, report.describe()
    assert report.ok, report.describe()
    assert len(producer.appended) >= 600, "the traffic did not outlast the kills"
    logs = [path.read_text(errors="replace") for path in report.log_dir.glob("run-*.log")]
    recovered = sum("pending entries read again" in text for text in logs)
    assert recovered > 0, "no kill left entries pending: the kills missed the traffic"
    assert int(rdb.xpending(stream, "crash")["pending"]) == 0
    listed = subprocess.run(
        [str(dovetail_executable()), "dlq", "list", "--status", "all", "--json"],
        cwd=tmp_path,
        capture_output=True,
        check=True,
    )
    assert json.loads(listed.stdout) == []
