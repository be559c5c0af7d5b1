"""CSV against SQL query results: SQLite and PostgreSQL, typed columns against CSV text."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import anyio
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from dovetail.errors import PermanentError, TransientError

from .support import reconcile, write_csv

ROWS = [
    {"order_id": "1", "amount": "10.00", "email": "a@x.com", "placed": "2024-05-01"},
    {"order_id": "2", "amount": "20.00", "email": "b@x.com", "placed": "2024-05-02"},
    {"order_id": "3", "amount": "30.00", "email": "c@x.com", "placed": "2024-05-03"},
    {"order_id": "4", "amount": "40.00", "email": "", "placed": "2024-05-04"},
]
TABLE_ROWS = [
    (1, "10.00", "A@X.COM", "2024-05-01"),
    (2, "20.50", "b@x.com", "2024-05-02"),
    (4, "40.00", None, "2024-05-04"),
    (5, "50.00", "e@x.com", "2024-05-05"),
]


def _check(report_args: dict[str, object], root: Path) -> None:
    report = reconcile(
        root,
        source={"csv": "orders.csv"},
        key="order_id",
        fields={"email": {"normalize": ["lower"]}, "amount": {"tolerance": 0.001}},
        threshold=50,
        **report_args,
    )
    assert report.source_records == 4
    assert report.target_records == 4
    assert (report.matched, report.equal) == (3, 2)
    assert [e["key"] for e in report.examples["missing"]] == ["3"]
    assert [e["key"] for e in report.examples["extra"]] == ["5"]
    assert report.examples["mismatch"] == [
        {"key": "2", "field": "amount", "source": "20.00", "target": 20.5}
    ]
    assert report.passed  # 2 of 4 equal = 50 %


def test_csv_against_sqlite_query(tmp_path: Path) -> None:
    write_csv(tmp_path / "orders.csv", ROWS, list(ROWS[0]))
    with sqlite3.connect(tmp_path / "erp.db") as db:
        db.execute(
            "CREATE TABLE sales (id INTEGER, total NUMERIC, email TEXT, placed TEXT, note TEXT)"
        )
        db.executemany(
            "INSERT INTO sales VALUES (?, ?, ?, ?, 'x')",
            [(i, float(a), e, p) for i, a, e, p in TABLE_ROWS],
        )
    _check(
        {
            "target": {
                "sql": {
                    "url": "sqlite:///erp.db",
                    "query": "SELECT id AS order_id, total AS amount, email, placed FROM sales"
                    " WHERE note = :note",
                    "params": {"note": "x"},
                    "batch_size": 2,
                }
            }
        },
        tmp_path,
    )


@pytest.fixture
def pg_table(postgres_url: str) -> Iterator[str]:
    name = f"reconcile_{uuid.uuid4().hex[:12]}"
    url = postgres_url.replace("postgresql://", "postgresql+asyncpg://", 1)

    async def run(statements: list[tuple[str, dict[str, object] | None]]) -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                for statement, params in statements:
                    await connection.execute(text(statement), params)
        finally:
            await engine.dispose()

    create: tuple[str, dict[str, object] | None] = (
        f"CREATE TABLE {name} (id BIGINT, total NUMERIC(12,2), email TEXT, placed DATE)",
        None,
    )
    inserts: list[tuple[str, dict[str, object] | None]] = [
        (
            f"INSERT INTO {name} VALUES (:i, :t, :e, :p)",
            {"i": i, "t": Decimal(a), "e": e, "p": date.fromisoformat(p)},
        )
        for i, a, e, p in TABLE_ROWS
    ]
    anyio.run(run, [create, *inserts])
    yield name
    drop: list[tuple[str, dict[str, object] | None]] = [(f"DROP TABLE IF EXISTS {name}", None)]
    anyio.run(run, drop)


@pytest.mark.postgres
def test_csv_against_postgres_query(tmp_path: Path, postgres_url: str, pg_table: str) -> None:
    write_csv(tmp_path / "orders.csv", ROWS, list(ROWS[0]))
    query = f"SELECT id AS order_id, total AS amount, email, placed FROM {pg_table}"
    _check({"target": {"sql": {"url": postgres_url, "query": query, "batch_size": 3}}}, tmp_path)


def test_missing_sqlite_database_is_an_error_naming_the_side(tmp_path: Path) -> None:
    write_csv(tmp_path / "orders.csv", ROWS, list(ROWS[0]))
    with pytest.raises(PermanentError, match=r"target: SQLite database .*nope\.db does not exist"):
        reconcile(
            tmp_path,
            source={"csv": "orders.csv"},
            target={"sql": {"url": "sqlite:///nope.db", "query": "SELECT 1"}},
            key="order_id",
        )
    assert not (tmp_path / "nope.db").exists()


def test_unreachable_database_is_transient(tmp_path: Path) -> None:
    write_csv(tmp_path / "orders.csv", ROWS, list(ROWS[0]))
    with pytest.raises(TransientError, match="target query failed"):
        reconcile(
            tmp_path,
            source={"csv": "orders.csv"},
            target={
                "sql": {
                    "url": "postgresql://postgres@127.0.0.1:1/test",
                    "query": "SELECT 1",
                    "timeout": 2,
                }
            },
            key="order_id",
        )
