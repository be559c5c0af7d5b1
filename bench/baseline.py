"""Plain-Python baseline for the batch benchmark: the flow's work, hand-written, no engine.

``csv.DictReader`` -> ``jsonschema_rs`` validation -> a hand-written mapping function -> upsert
in batches (500 rows, one transaction each): into SQLite with ``executemany`` of ``INSERT ... ON
CONFLICT``, into PostgreSQL with asyncpg ``COPY`` into a temporary table and ``INSERT ... ON
CONFLICT``. Rows that fail validation are skipped and counted. The tables it leaves have the same
content as the flow's (``batch_data.target_ddl``), so the two can be compared row for row.

Run it alone to print rows/s for 200,000 orders::

    python bench/baseline.py [--rows N] [--postgres postgresql://postgres@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema_rs

if __package__:
    from .batch_data import (
        ORDER_SCHEMA,
        STATUS_CODES,
        TARGET_COLUMNS,
        TARGET_TABLE,
        target_ddl,
        write_orders_csv,
    )
else:  # run as a script: python bench/baseline.py
    from batch_data import (  # type: ignore[no-redef]
        ORDER_SCHEMA,
        STATUS_CODES,
        TARGET_COLUMNS,
        TARGET_TABLE,
        target_ddl,
        write_orders_csv,
    )

BATCH_SIZE = 500
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class BaselineRun:
    """One baseline run: wall time from opening the CSV to the last commit, and the counts."""

    seconds: float
    written: int
    rejected: int


def map_order(row: dict[str, str]) -> dict[str, Any]:
    """The mapping sheet of ``batch_data.MAPPING_SHEET_ROWS``, written by hand."""
    created = datetime.fromisoformat(row["created_at"])
    return {
        "order_id": int(row["order_id"]),
        "order_date": created.date(),
        "created_at": created,
        "customer_email": row["customer_email"].strip().lower(),
        "customer_name": " ".join(p for p in (row["first_name"], row["last_name"]) if p),
        "country": row["country"].upper(),
        "city": row["city"].strip(),
        "postal_code": row["postal_code"].strip(),
        "status": STATUS_CODES[row["status"]],
        "item_count": int(row["items"]),
        "total": Decimal(row["total"]).quantize(_CENT),
        "currency": (row["currency"] or "EUR").upper(),
        "payment_method": row["payment"].lower(),
        "channel": row["channel"] or "web",
        "coupon_code": row["coupon"].strip().upper(),
    }


def _valid_orders(csv_path: Path, counts: dict[str, int]) -> Iterator[dict[str, Any]]:
    validator = jsonschema_rs.validator_for(ORDER_SCHEMA)
    with open(csv_path, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if validator.is_valid(row):
                yield map_order(row)
            else:
                counts["rejected"] += 1


def _batches(orders: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for order in orders:
        batch.append(order)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _sqlite_record(order: dict[str, Any]) -> tuple[Any, ...]:
    """SQLite has no date or decimal type: text in the layout SQLAlchemy uses for the flow."""
    created = order["created_at"].astimezone(UTC).replace(tzinfo=None)
    return (
        order["order_id"],
        order["order_date"].isoformat(),
        created.isoformat(" ", "microseconds"),
        order["customer_email"],
        order["customer_name"],
        order["country"],
        order["city"],
        order["postal_code"],
        order["status"],
        order["item_count"],
        str(order["total"]),
        order["currency"],
        order["payment_method"],
        order["channel"],
        order["coupon_code"],
    )


def _upsert_sql(table: str, placeholders: str) -> str:
    columns = ", ".join(TARGET_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in TARGET_COLUMNS if c != "order_id")
    return (
        f"INSERT INTO {table} ({columns}) {placeholders}"
        f" ON CONFLICT (order_id) DO UPDATE SET {updates}"
    )


def sqlite_baseline(csv_path: Path, db_path: Path, batch_size: int = BATCH_SIZE) -> BaselineRun:
    """Load ``csv_path`` into ``sales_orders`` of the SQLite file ``db_path``."""
    connection = sqlite3.connect(db_path, isolation_level=None)
    try:
        connection.execute(target_ddl("sqlite"))
        sql = _upsert_sql(TARGET_TABLE, "VALUES (" + ", ".join("?" * len(TARGET_COLUMNS)) + ")")
        counts = {"rejected": 0, "written": 0}
        started = time.perf_counter()
        for batch in _batches(_valid_orders(csv_path, counts), batch_size):
            connection.execute("BEGIN")
            connection.executemany(sql, [_sqlite_record(order) for order in batch])
            connection.execute("COMMIT")
            counts["written"] += len(batch)
        seconds = time.perf_counter() - started
    finally:
        connection.close()
    return BaselineRun(seconds, counts["written"], counts["rejected"])


async def _postgres(csv_path: Path, dsn: str, table: str, batch_size: int) -> BaselineRun:
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(target_ddl("postgresql", table))
        sql = _upsert_sql(table, "SELECT * FROM baseline_stage")
        counts = {"rejected": 0, "written": 0}
        started = time.perf_counter()
        for batch in _batches(_valid_orders(csv_path, counts), batch_size):
            latest = {order["order_id"]: order for order in batch}  # ON CONFLICT: once per row
            records = [tuple(o[c] for c in TARGET_COLUMNS) for o in latest.values()]
            async with connection.transaction():
                await connection.execute(
                    "CREATE TEMP TABLE baseline_stage"
                    f" (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP"
                )
                await connection.copy_records_to_table(
                    "baseline_stage", records=records, columns=list(TARGET_COLUMNS)
                )
                await connection.execute(sql)
            counts["written"] += len(batch)
        seconds = time.perf_counter() - started
    finally:
        await connection.close()
    return BaselineRun(seconds, counts["written"], counts["rejected"])


async def _copy_upsert(csv_path: Path, dsn: str, table: str, batch_size: int) -> BaselineRun:
    import asyncpg

    counts = {"rejected": 0, "written": 0}
    batches = []
    for batch in _batches(_valid_orders(csv_path, counts), batch_size):
        latest = {order["order_id"]: order for order in batch}
        batches.append([tuple(o[c] for c in TARGET_COLUMNS) for o in latest.values()])
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(target_ddl("postgresql", table))
        sql = _upsert_sql(table, "SELECT * FROM ceiling_stage")
        started = time.perf_counter()
        for records in batches:
            async with connection.transaction():
                await connection.execute(
                    f"CREATE TEMP TABLE ceiling_stage (LIKE {table} INCLUDING DEFAULTS)"
                    " ON COMMIT DROP"
                )
                await connection.copy_records_to_table(
                    "ceiling_stage", records=records, columns=list(TARGET_COLUMNS)
                )
                await connection.execute(sql)
            counts["written"] += len(records)
        seconds = time.perf_counter() - started
    finally:
        await connection.close()
    return BaselineRun(seconds, counts["written"], counts["rejected"])


def postgres_copy_upsert(
    csv_path: Path, dsn: str, table: str, batch_size: int = BATCH_SIZE
) -> BaselineRun:
    """The database's own ceiling: rows already validated and mapped (not timed) loaded into
    ``table`` by COPY into a temporary table and ``INSERT ... ON CONFLICT``, one transaction
    per batch of ``batch_size``; only the load is timed."""
    return asyncio.run(_copy_upsert(Path(csv_path), dsn, table, batch_size))


def postgres_baseline(
    csv_path: Path, dsn: str, table: str, batch_size: int = BATCH_SIZE
) -> BaselineRun:
    """Load ``csv_path`` into ``table`` (created if missing) on PostgreSQL at ``dsn``."""
    return asyncio.run(_postgres(Path(csv_path), dsn, table, batch_size))


def run_baseline_sqlite(csv_path: Path, db_path: Path) -> float:
    """Seconds the plain-Python SQLite load of ``csv_path`` takes."""
    return sqlite_baseline(Path(csv_path), Path(db_path)).seconds


def run_baseline_postgres(csv_path: Path, dsn: str, table: str) -> float:
    """Seconds the plain-Python PostgreSQL load of ``csv_path`` into ``table`` takes."""
    return postgres_baseline(Path(csv_path), dsn, table).seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES", DEFAULT_POSTGRES))
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        csv_path = Path(directory) / "orders.csv"
        write_orders_csv(csv_path, args.rows, args.seed)
        run = sqlite_baseline(csv_path, Path(directory) / "orders.db", args.batch_size)
        _report("sqlite", args.rows, run)
        if not args.skip_postgres:
            table = f"bench_baseline_{os.getpid()}"
            try:
                run = postgres_baseline(csv_path, args.postgres, table, args.batch_size)
                _report("postgresql", args.rows, run)
            finally:
                asyncio.run(_drop(args.postgres, table))


def _report(target: str, rows: int, run: BaselineRun) -> None:
    print(
        f"baseline {target:<10} {rows:>8} rows  {run.seconds:7.2f} s"
        f"  {rows / run.seconds:>9,.0f} rows/s  (written {run.written}, rejected {run.rejected})"
    )


async def _drop(dsn: str, table: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f"DROP TABLE IF EXISTS {table}")
    finally:
        await connection.close()


if __name__ == "__main__":
    main()
