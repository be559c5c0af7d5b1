"""The ``sql`` sink against the real MariaDB: upserts, bad-row isolation, error translation."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pymysql
import pytest
from databases import Database, mariadb_connection, require_mariadb
from sql_support import build_sink, envelopes, write_once

from dovetail.connectors.sql.engine import RowRejected, resolve_url, translate_error
from dovetail.errors import PermanentError, TransientError


@pytest.fixture
def mariadb(tmp_path: Path) -> Iterator[Database]:
    database = Database("mariadb", require_mariadb())
    try:
        yield database
    finally:
        database.drop_tables()


@pytest.fixture
def orders(mariadb: Database) -> str:
    table = mariadb.table("orders")
    writes = mariadb.table("writes")
    mariadb.execute(
        f"CREATE TABLE {table} (order_id INT PRIMARY KEY, email VARCHAR(20) NOT NULL,"
        " total DECIMAL(10, 2), ordered_at DATETIME(6), note TEXT,"
        " CONSTRAINT total_not_negative CHECK (total >= 0))",
        f"CREATE TABLE {writes} (n INT)",
        f"CREATE TRIGGER {writes}_i AFTER INSERT ON {table} FOR EACH ROW"
        f" INSERT INTO {writes} VALUES (1)",
        f"CREATE TRIGGER {writes}_u AFTER UPDATE ON {table} FOR EACH ROW"
        f" INSERT INTO {writes} VALUES (1)",
    )
    return table


def sink_yaml(url: str, table: str, **extra: str) -> str:
    fields = {"url": f"'{url}'", "table": table, **extra}
    return "sql: {" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}"


def test_upsert_replayed_batches_leave_the_same_rows(
    mariadb: Database, orders: str, tmp_path: Path
) -> None:
    sink = build_sink(sink_yaml(mariadb.url, orders, mode="upsert", key="[order_id]"), tmp_path)
    batch = [
        {"order_id": n, "email": f"{n}@x", "total": f"{n}.25", "ordered_at": "2024-03-01T08:00Z"}
        for n in range(1, 51)
    ]

    async def scenario() -> list[list[BaseException | None]]:
        await sink.open()
        try:
            return [await sink.write(envelopes(batch)) for _ in range(3)]
        finally:
            await sink.close()

    assert asyncio.run(scenario()) == [[None] * 50] * 3
    rows = mariadb.rows(f"SELECT order_id, email, total, ordered_at FROM {orders} ORDER BY 1")
    assert len(rows) == 50
    assert rows[9][1:3] == ("10@x", Decimal("10.25"))
    assert rows[9][3].isoformat() == "2024-03-01T08:00:00"


def test_upsert_overwrites_mapped_columns_and_keeps_the_others(
    mariadb: Database, orders: str, tmp_path: Path
) -> None:
    mariadb.execute(f"INSERT INTO {orders} (order_id, email, note) VALUES (1, 'old@x', 'keep')")
    sink = build_sink(sink_yaml(mariadb.url, orders, mode="upsert", key="[order_id]"), tmp_path)

    results = asyncio.run(
        write_once(sink, [{"order_id": 1, "email": "new@x"}, {"order_id": 2, "email": "b@x"}])
    )

    assert results == [None, None]
    assert mariadb.rows(f"SELECT order_id, email, note FROM {orders} ORDER BY 1") == [
        (1, "new@x", "keep"),
        (2, "b@x", None),
    ]


def test_rows_the_database_refuses_fail_alone_with_a_reason_that_quotes_no_value(
    mariadb: Database, orders: str, tmp_path: Path
) -> None:
    mariadb.execute(f"INSERT INTO {orders} (order_id, email) VALUES (3, 'taken@x')")
    sink = build_sink(sink_yaml(mariadb.url, orders), tmp_path)
    payloads = [
        {"order_id": 1, "email": "a@x", "total": 5},
        {"order_id": 2, "email": "b@x", "total": -1},  # check constraint
        {"order_id": 3, "email": "secret-dup@x"},  # duplicate primary key
        {"order_id": 4},  # email has no default
        {"order_id": 5, "email": "e@x", "total": "123456789012"},  # out of range
        {"order_id": 6, "email": "f@x"},
    ]

    results = asyncio.run(write_once(sink, payloads))

    assert [r is None for r in results] == [True, False, False, False, False, True]
    reasons = [str(r) for r in results if r is not None]
    assert all(isinstance(r, RowRejected) for r in results if r is not None)
    assert "total_not_negative" in reasons[0]
    assert "unique constraint 'PRIMARY'" in reasons[1]
    assert "email" in reasons[2]
    assert "total" in reasons[3]
    assert not any("secret" in reason or "3" in reason.split("(")[0] for reason in reasons)
    assert [row[0] for row in mariadb.rows(f"SELECT order_id FROM {orders} ORDER BY 1")] == [
        1,
        3,
        6,
    ]


def test_init_sql_runs_before_the_table_is_inspected(mariadb: Database, tmp_path: Path) -> None:
    table = mariadb.table("created")
    (tmp_path / "init.sql").write_text(
        f"-- created by the flow; idempotent\n"
        f"CREATE TABLE IF NOT EXISTS {table} (sku VARCHAR(20) PRIMARY KEY, qty INT);\n"
        f"INSERT IGNORE INTO {table} VALUES ('seed;1', 0);\n"
    )
    sink = build_sink(
        sink_yaml(
            mariadb.url.replace("mariadb://", "mysql://"),
            table,
            mode="upsert",
            key="[sku]",
            init_sql="init.sql",
        ),
        tmp_path,
    )

    assert asyncio.run(write_once(sink, [{"sku": "A", "qty": 3}])) == [None]
    assert mariadb.rows(f"SELECT sku, qty FROM {table} ORDER BY 1") == [("A", 3), ("seed;1", 0)]


def test_a_lock_held_longer_than_the_timeout_is_a_transient_failure(
    mariadb: Database, orders: str, tmp_path: Path
) -> None:
    mariadb.execute(f"INSERT INTO {orders} (order_id, email) VALUES (1, 'a@x')")
    holder = mariadb_connection()
    holder.cursor().execute(f"SELECT * FROM {orders} WHERE order_id = 1 FOR UPDATE")
    sink = build_sink(
        sink_yaml(mariadb.url, orders, mode="upsert", key="[order_id]", timeout="1s"), tmp_path
    )
    try:
        started = time.monotonic()
        results = asyncio.run(write_once(sink, [{"order_id": 1, "email": "b@x"}]))
        elapsed = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()

    (result,) = results
    assert isinstance(result, TransientError)
    assert result.reason == "lock wait timeout exceeded"
    assert elapsed < 10


def test_a_deadlock_is_a_transient_failure(mariadb: Database, tmp_path: Path) -> None:
    table = mariadb.table("locks")
    mariadb.execute(
        f"CREATE TABLE {table} (id INT PRIMARY KEY, v INT)",
        f"INSERT INTO {table} VALUES (1, 0), (2, 0)",
    )
    first, second = mariadb_connection(), mariadb_connection()
    errors: list[BaseException] = []

    def lock_then(connection: pymysql.Connection, mine: int, other: int) -> None:
        cursor = connection.cursor()
        try:
            cursor.execute(f"UPDATE {table} SET v = 1 WHERE id = {mine}")
            time.sleep(0.3)
            cursor.execute(f"UPDATE {table} SET v = 1 WHERE id = {other}")
            connection.commit()
        except pymysql.err.MySQLError as exc:
            errors.append(exc)
            connection.rollback()

    threads = [
        threading.Thread(target=lock_then, args=(first, 1, 2)),
        threading.Thread(target=lock_then, args=(second, 2, 1)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first.close()
    second.close()

    assert len(errors) == 1
    error = translate_error(errors[0])
    assert isinstance(error, TransientError)
    assert error.reason == "deadlock detected"


def test_an_unreachable_server_is_transient_and_a_missing_table_permanent(
    mariadb: Database, tmp_path: Path
) -> None:
    down = build_sink(sink_yaml("mariadb://root@127.0.0.1:1/test", "t", timeout="1s"), tmp_path)
    (result,) = asyncio.run(write_once(down, [{"id": 1}]))
    assert isinstance(result, TransientError)

    missing = build_sink(sink_yaml(mariadb.url, "no_such_table_here"), tmp_path)
    with pytest.raises(PermanentError):
        asyncio.run(missing.open())
    asyncio.run(missing.close())


def test_mariadb_urls_use_aiomysql_with_utf8mb4(tmp_path: Path) -> None:
    url = resolve_url("mariadb://app:pw@db:3307/shop", tmp_path)
    assert url.drivername == "mysql+aiomysql"
    assert (url.host, url.port, url.database, url.query["charset"]) == (
        "db",
        3307,
        "shop",
        "utf8mb4",
    )
    kept = resolve_url("mysql+aiomysql://app@db/shop?charset=latin1", tmp_path)
    assert kept.query["charset"] == "latin1"
    with pytest.raises(ValueError, match="driver 'asyncmy' is not supported"):
        resolve_url("mariadb+asyncmy://db/shop", tmp_path)
