"""Crash safety on real processes: SIGKILL during ``dovetail run --once``, then rerun.

Each row must end up in the upsert SQL sink exactly once with the right values, and the
input file must be archived once everything is settled.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROWS = 30_000
FLOW = """\
flow: crash-orders
version: 1.0.0
source:
  file:
    path: inbox/*.csv
    format: csv
    after: {move_to: archive/}
steps:
  - map:
      jsonata: '{"order_id": order_id, "amount": $number(total), "country": $uppercase(country)}'
sink:
  sql:
    url: sqlite:///data/out.db
    init_sql: sql/init.sql
    table: orders
    mode: upsert
    key: [order_id]
delivery:
  idempotency_key: order_id
runtime: {batch_size: 250, workers: 2}
"""


def make_project(root: Path) -> None:
    (root / "flows").mkdir(parents=True)
    (root / "inbox").mkdir()
    (root / "sql").mkdir()
    (root / "dovetail.yaml").write_text("project: crash\n")
    (root / "flows" / "crash-orders.yaml").write_text(FLOW)
    (root / "sql" / "init.sql").write_text(
        "CREATE TABLE IF NOT EXISTS orders (order_id TEXT PRIMARY KEY, amount REAL, country TEXT);"
        "CREATE TABLE IF NOT EXISTS writes (n INTEGER);"
        "CREATE TRIGGER IF NOT EXISTS count_insert AFTER INSERT ON orders"
        " BEGIN INSERT INTO writes VALUES (1); END;"
        "CREATE TRIGGER IF NOT EXISTS count_update AFTER UPDATE ON orders"
        " BEGIN INSERT INTO writes VALUES (1); END;"
    )
    with (root / "inbox" / "orders.csv").open("w") as out:
        out.write("order_id,total,country\n")
        for i in range(ROWS):
            out.write(f"O-{i:06d},{i % 997}.50,{'nl' if i % 2 else 'de'}\n")


def dovetail(root: Path) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).parent / "dovetail"
    return subprocess.Popen(
        [str(exe), "run", "--once"],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1"},
    )


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    make_project(tmp_path)
    rng = random.Random(int(os.environ.get("DOVETAIL_CRASH_SEED", "20261125")))
    kills = 0
    for _ in range(4):
        process = dovetail(tmp_path)
        time.sleep(rng.uniform(1.0, 3.0))
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
    final = dovetail(tmp_path)
    assert final.wait(timeout=300) == 0
    with sqlite3.connect(tmp_path / "data" / "out.db") as db:
        count, distinct = db.execute(
            "SELECT count(*), count(DISTINCT order_id) FROM orders"
        ).fetchone()
        wrong = db.execute(
            "SELECT count(*) FROM orders WHERE amount != (CAST(substr(order_id, 3) AS INTEGER)"
            " % 997) + 0.5 OR country NOT IN ('NL', 'DE')"
        ).fetchone()[0]
        writes = db.execute("SELECT count(*) FROM writes").fetchone()[0]
    assert (count, distinct, wrong) == (ROWS, ROWS, 0)
    assert kills >= 1, "the run finished before any kill: make the input larger"
    # at-least-once: rows after the last checkpoint may be written again, never lost
    assert writes >= ROWS
    assert not list((tmp_path / "inbox").glob("*.csv"))
    assert (tmp_path / "archive" / "orders.csv").is_file()
    # a further run finds nothing new to do
    again = dovetail(tmp_path)
    assert again.wait(timeout=120) == 0
    with sqlite3.connect(tmp_path / "data" / "out.db") as db:
        assert db.execute("SELECT count(*) FROM writes").fetchone()[0] == writes
