"""The dedicated SQLite thread: whole operations, one at a time, on the thread that connected."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from dovetail.store.sqlite_thread import SqliteThread, in_transaction, insert_rows


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)")
    return connection


def test_operations_run_in_submission_order_on_the_connecting_thread(tmp_path: Path) -> None:
    async def main() -> tuple[list[int], set[str]]:
        thread = SqliteThread("test-sqlite")
        await thread.start(lambda: _connect(tmp_path / "t.db"))
        names: set[str] = set()

        def insert(n: int) -> Callable[[sqlite3.Connection], int]:
            def operation(connection: sqlite3.Connection) -> int:
                names.add(threading.current_thread().name)
                connection.execute("INSERT INTO t VALUES (?)", (n,))
                return n

            return operation

        try:
            await asyncio.gather(*(thread.run(insert(n)) for n in range(20)))
            stored = await thread.run(
                lambda c: [row[0] for row in c.execute("SELECT n FROM t ORDER BY rowid")]
            )
        finally:
            await thread.stop()
        return stored, names

    stored, names = asyncio.run(main())

    assert stored == list(range(20))
    assert names == {"test-sqlite"}


def test_errors_reach_the_caller_and_the_connection_stays_usable(tmp_path: Path) -> None:
    def insert_then_fail(connection: sqlite3.Connection) -> None:
        connection.execute("INSERT INTO t VALUES (1)")
        raise ZeroDivisionError

    async def main() -> int:
        thread = SqliteThread("test-sqlite")
        await thread.start(lambda: _connect(tmp_path / "t.db"))
        try:
            with pytest.raises(sqlite3.OperationalError, match="no such table"):
                await thread.run(lambda c: c.execute("SELECT * FROM missing"))
            with pytest.raises(ZeroDivisionError):
                await thread.run(lambda c: in_transaction(c, insert_then_fail))
            assert not await thread.run(lambda c: c.in_transaction)
            count: int = await thread.run(
                lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]
            )
            return count
        finally:
            await thread.stop()

    assert asyncio.run(main()) == 0  # the failed transaction was rolled back


def test_a_cancelled_caller_does_not_leave_a_transaction_open(tmp_path: Path) -> None:
    release = threading.Event()

    def slow_insert(connection: sqlite3.Connection) -> None:
        def body(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO t VALUES (7)")
            release.wait(5)

        in_transaction(connection, body)

    async def main() -> tuple[int, bool]:
        thread = SqliteThread("test-sqlite")
        await thread.start(lambda: _connect(tmp_path / "t.db"))
        try:
            task = asyncio.ensure_future(thread.run(slow_insert))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            release.set()
            count = await thread.run(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0])
            open_transaction = await thread.run(lambda c: c.in_transaction)
            return count, open_transaction
        finally:
            await thread.stop()

    assert asyncio.run(main()) == (1, False)  # the operation ran to its commit


def test_concurrent_starts_open_one_connection_and_stop_closes_it(tmp_path: Path) -> None:
    opened: list[sqlite3.Connection] = []

    def connect() -> sqlite3.Connection:
        connection = _connect(tmp_path / "t.db")
        opened.append(connection)
        return connection

    async def main() -> None:
        thread = SqliteThread("test-sqlite")
        await asyncio.gather(thread.start(connect), thread.start(connect))
        assert thread.running
        await thread.stop()
        assert not thread.running
        with pytest.raises(RuntimeError, match="not open"):
            await thread.run(lambda c: None)

    asyncio.run(main())

    assert len(opened) == 1
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        opened[0].execute("SELECT 1")


def test_a_failing_connect_raises_from_start(tmp_path: Path) -> None:
    async def main() -> None:
        thread = SqliteThread("test-sqlite")
        with pytest.raises(sqlite3.OperationalError):
            await thread.start(lambda: sqlite3.connect(tmp_path / "missing" / "dir" / "t.db"))
        assert not thread.running

    asyncio.run(main())


def test_insert_rows_keeps_order_and_values_in_any_number_of_statements() -> None:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    connection.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, a TEXT, b REAL)")
    sql = "INSERT INTO t (k, a, b) VALUES (?, ?, ?) ON CONFLICT (k) DO UPDATE SET a = excluded.a"
    for count in (0, 1, 2, 3, 255, 256, 257, 777):
        connection.execute("DELETE FROM t")
        rows = [(n, f"v{n}", n / 3) for n in range(count)]
        insert_rows(connection, sql, rows)
        assert connection.execute("SELECT k, a, b FROM t ORDER BY rowid").fetchall() == rows
    # a later row for the same key wins, as one statement per row would have it
    insert_rows(connection, sql, [(1, "first", 0.0), (1, "second", 0.0)])
    assert connection.execute("SELECT a FROM t WHERE k = 1").fetchone() == ("second",)
    connection.close()


def test_insert_rows_stays_within_the_limit_on_bound_values() -> None:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 10)
    connection.execute("CREATE TABLE t (a INTEGER, b INTEGER, c INTEGER)")
    rows = [(n, n + 1, n + 2) for n in range(50)]

    insert_rows(connection, "INSERT INTO t (a, b, c) VALUES (?, ?, ?)", rows)

    assert connection.execute("SELECT a, b, c FROM t ORDER BY rowid").fetchall() == rows
    connection.close()
