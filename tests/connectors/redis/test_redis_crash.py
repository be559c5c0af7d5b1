"""No stream entry is lost while the consuming ``dovetail run`` is killed (SIGKILL) ten times.

A producer appends entries to a stream at a steady rate for as long as the kills go on; the
flow reads them through a consumer group and upserts them into a SQLite table. Every kill
leaves entries read but not acknowledged in the consumer's pending list; each restart reads
them again first. At the end every appended entry is in the table, nothing is pending, and
the dead-letter queue is empty.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from dovetail.testing.broker_crash import (
    ProducerThread,
    TableWatch,
    broker_crash,
    dead_letters,
    table_flow,
    table_project,
)

KILLS = 10
RATE = 50.0  # entries per second
MAX_ENTRIES = 20_000
TAIL = 50  # appended after the kills, so the final run has work before it is stopped
FLOW_NAME = "stream-to-table"

FLOW = table_flow(
    FLOW_NAME,
    source='redis: {stream: "${env:CRASH_STREAM}", group: crash, consumer: worker-1, block: 200ms}',
    steps="""- map: {jsonata: '{"entry_key": key, "amount": amount}'}""",
    table="entries",
    key="entry_key",
    idempotency_key="key",
)

INIT_SQL = "CREATE TABLE IF NOT EXISTS entries (entry_key TEXT PRIMARY KEY, amount INTEGER);"


class Producer(ProducerThread):
    """Appends entries at ``RATE`` per second from a thread until ``stop()``."""

    def __init__(self, rdb: Any, stream: str) -> None:
        super().__init__()
        self.rdb = rdb
        self.stream = stream

    def send_tail(self) -> None:
        """Append ``TAIL`` more entries at once."""
        start = len(self.sent) + 1_000_000
        for number in range(start, start + TAIL):
            key = f"E-{number}"
            self.rdb.xadd(self.stream, {"payload": orjson.dumps({"key": key, "amount": number})})
            self.sent.append(key)

    def produce(self) -> None:
        started = time.monotonic()
        for number in range(MAX_ENTRIES):
            pause = started + number / RATE - time.monotonic()
            if self.stopping.wait(max(0.0, pause)):
                return
            key = f"E-{number:05d}"
            self.rdb.xadd(self.stream, {"payload": orjson.dumps({"key": key, "amount": number})})
            self.sent.append(key)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_no_entry_is_lost_across_ten_kills(
    tmp_path: Path, rdb: Any, streams: Callable[[str], str]
) -> None:
    stream = streams("crash")
    table = TableWatch(table_project(tmp_path, FLOW, INIT_SQL), "entries", "entry_key")
    producer = Producer(rdb, stream)
    report = broker_crash(
        tmp_path,
        producer=producer,
        table=table,
        env={"CRASH_STREAM": stream},
        kills=KILLS,
        interval=(0.3, 1.0),
    )
    print(f"\n{report.describe()}; appended {len(producer.sent)}")

    assert report.kills >= KILLS, report.describe()
    assert report.ok, report.describe()
    assert len(producer.sent) >= 600, "the traffic did not outlast the kills"
    logs = [path.read_text(errors="replace") for path in report.log_dir.glob("run-*.log")]
    recovered = sum("pending entries read again" in text for text in logs)
    assert recovered > 0, "no kill left entries pending: the kills missed the traffic"
    assert int(rdb.xpending(stream, "crash")["pending"]) == 0
    assert dead_letters(tmp_path) == []
