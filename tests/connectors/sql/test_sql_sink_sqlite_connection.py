"""The ``sql`` sink's one SQLite connection: concurrent batches, pragmas, memory, other writers."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from sql_support import build_sink, envelopes, write_once

from dovetail.errors import PermanentError, TransientError

DDL = """
PRAGMA foreign_keys = ON;
CREATE TABLE IF NOT EXISTS customers (id INTEGER PRIMARY KEY);
INSERT OR IGNORE INTO customers (id) VALUES (1);
CREATE TABLE IF NOT EXISTS orders (
    order_id INTEGER PRIMARY KEY,
    customer_id INTEGER REFERENCES customers (id),
    total NUMERIC
);
"""


def _sink(project: Path, url: str = "'sqlite:///data/orders.db'", **extra: str) -> Any:
    (project / "init.sql").write_text(DDL)
    fields = {"url": url, "table": "orders", "init_sql": "init.sql", **extra}
    return build_sink("sql: {" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}", project)


def _stored(db: Path) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(db)
    try:
        return connection.execute("SELECT * FROM orders ORDER BY order_id").fetchall()
    finally:
        connection.close()


def test_concurrent_batches_all_land(tmp_path: Path) -> None:
    sink = _sink(tmp_path, mode="upsert", key="[order_id]")

    async def scenario() -> list[list[BaseException | None]]:
        await sink.open()
        try:
            batches = [
                envelopes([{"order_id": n * 100 + i, "total": i} for i in range(50)])
                for n in range(6)
            ]
            return list(await asyncio.gather(*(sink.write(batch) for batch in batches)))
        finally:
            await sink.close()

    results = asyncio.run(scenario())

    assert all(result is None for batch in results for result in batch)
    assert len(_stored(tmp_path / "data" / "orders.db")) == 300


def test_a_pragma_in_init_sql_applies_to_the_writes(tmp_path: Path) -> None:
    sink = _sink(tmp_path)

    results = asyncio.run(
        write_once(
            sink,
            [
                {"order_id": 1, "customer_id": 1, "total": 5},
                {"order_id": 2, "customer_id": 99, "total": 5},  # no such customer
            ],
        )
    )

    assert results[0] is None
    assert isinstance(results[1], PermanentError)
    assert not isinstance(results[1], TransientError)
    assert "FOREIGN KEY" in str(results[1])
    assert _stored(tmp_path / "data" / "orders.db") == [(1, 1, 5)]


def test_an_in_memory_database_lives_as_long_as_the_sink(tmp_path: Path) -> None:
    sink = _sink(tmp_path, url="'sqlite://'", mode="upsert", key="[order_id]")

    async def scenario() -> list[tuple[Any, ...]]:
        await sink.open()
        try:
            await sink.write(envelopes([{"order_id": 1, "total": 1}]))
            await sink.write(envelopes([{"order_id": 1, "total": 2}, {"order_id": 2}]))
            database = sink._sqlite  # a memory database is reached through its one connection
            rows: list[tuple[Any, ...]] = await database.run(
                lambda c: c.execute("SELECT order_id, total FROM orders ORDER BY 1").fetchall()
            )
            return rows
        finally:
            await sink.close()

    assert asyncio.run(scenario()) == [(1, 2), (2, None)]


def test_a_batch_waits_for_another_writer_within_the_timeout(tmp_path: Path) -> None:
    sink = _sink(tmp_path, timeout="5s")
    db = tmp_path / "data" / "orders.db"
    locked = threading.Event()

    def hold_the_lock() -> None:
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(0.4)
        other.execute("ROLLBACK")
        other.close()

    async def scenario() -> tuple[float, list[BaseException | None]]:
        await sink.open()
        holder = threading.Thread(target=hold_the_lock)
        holder.start()
        try:
            locked.wait(5)
            started = time.monotonic()
            results = await sink.write(envelopes([{"order_id": 1, "total": 1}]))
            return time.monotonic() - started, results
        finally:
            holder.join()
            await sink.close()

    waited, results = asyncio.run(scenario())

    assert results == [None]
    assert waited >= 0.3
    assert _stored(db) == [(1, None, 1)]


def test_a_cancelled_batch_leaves_the_sink_usable(tmp_path: Path) -> None:
    sink = _sink(tmp_path, mode="upsert", key="[order_id]")

    async def scenario() -> list[BaseException | None]:
        await sink.open()
        try:
            task = asyncio.ensure_future(
                sink.write(envelopes([{"order_id": n, "total": n} for n in range(2000)]))
            )
            await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            result: list[BaseException | None] = await sink.write(
                envelopes([{"order_id": 5000, "total": 1}])
            )
            return result
        finally:
            await sink.close()

    assert asyncio.run(scenario()) == [None]
    stored = _stored(tmp_path / "data" / "orders.db")
    assert (5000, None, 1) in stored
    assert len(stored) in (1, 2001)  # the cancelled batch committed whole or not at all
