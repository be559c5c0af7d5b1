"""Batch benchmark: CSV -> validate -> mapping sheet -> SQL upsert, against plain Python.

For each target (SQLite, and PostgreSQL when it is reachable) the same generated CSV goes
through a plain-Python script doing the same work (``bench/baseline.py``) and through a
Dovetail flow, in the same run; the output is rows/s for both and the ratio between them.
On PostgreSQL the flow is also set against the database's own ceiling in the same run: the
rows, already validated and mapped, loaded by COPY into a temporary table and ``INSERT ... ON
CONFLICT`` with the flow's batch size. The figures go to ``bench/results.json`` as ``{name,
value, unit, baseline, ratio}`` entries (entries of other benchmarks are kept).

    python bench/batch_pipeline.py [--rows 200000] [--postgres URL] [--batch-size 500]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.baseline import (
    DEFAULT_POSTGRES,
    postgres_baseline,
    postgres_copy_upsert,
    sqlite_baseline,
)
from bench.batch_data import (
    ORDER_SCHEMA,
    TARGET_TABLE,
    mapping_sheet_csv,
    target_ddl,
    write_orders_csv,
)
from dovetail.api import run_flow_async
from dovetail.config.loader import load_flow, load_project
from dovetail.store.sqlite import SqliteStore

WORK = Path(__file__).resolve().parents[1] / ".bench"
RESULTS = Path(__file__).resolve().parent / "results.json"
FLOW = """\
flow: {name}
version: 1.0.0
source:
  file: {{path: data/orders.csv, format: csv}}
steps:
  - validate: {{schema: schemas/order.schema.json}}
  - map: {{sheet: mappings/orders.csv}}
sink:
  sql:
    url: {url}
    init_sql: sql/{dialect}.sql
    table: {table}
    mode: upsert
    key: [order_id]
runtime: {{batch_size: {batch_size}, workers: 2}}
"""


def make_project(rows: int, batch_size: int, pg_url: str | None) -> Path:
    project = WORK / "project"
    shutil.rmtree(project, ignore_errors=True)
    for folder in ("flows", "data", "schemas", "mappings", "sql", "out"):
        (project / folder).mkdir(parents=True)
    (project / "dovetail.yaml").write_text("project: bench\n")
    stats = write_orders_csv(
        project / "data" / "orders.csv", rows, seed=42, invalid_ratio=0.01, update_ratio=0.05
    )
    print(
        f"generated {stats.rows} rows ({stats.invalid} invalid, "
        f"{stats.distinct_orders} distinct orders)"
    )
    (project / "schemas" / "order.schema.json").write_bytes(orjson.dumps(ORDER_SCHEMA))
    (project / "mappings" / "orders.csv").write_text(mapping_sheet_csv())
    (project / "sql" / "sqlite.sql").write_text(target_ddl("sqlite", TARGET_TABLE))
    (project / "sql" / "postgresql.sql").write_text(target_ddl("postgresql", "bench_dovetail"))
    (project / "flows" / "bench-sqlite.yaml").write_text(
        FLOW.format(
            name="bench-sqlite",
            url="sqlite:///out/dovetail.db",
            dialect="sqlite",
            table=TARGET_TABLE,
            batch_size=batch_size,
        )
    )
    if pg_url:
        (project / "flows" / "bench-postgres.yaml").write_text(
            FLOW.format(
                name="bench-postgres",
                url=pg_url,
                dialect="postgresql",
                table="bench_dovetail",
                batch_size=batch_size,
            )
        )
    return project


async def run_dovetail(project: Path, flow_name: str) -> tuple[float, int]:
    """Seconds for one ``run --once`` of the flow on a fresh store, and rows received."""
    shutil.rmtree(project / ".dovetail", ignore_errors=True)
    loaded = load_flow(project / "flows" / f"{flow_name}.yaml", load_project(project))
    store = SqliteStore(project / ".dovetail" / "state.db")
    await store.open()
    try:
        started = time.perf_counter()
        summary = await run_flow_async(loaded, store=store, once=True)
        seconds = time.perf_counter() - started
    finally:
        await store.close()
    return seconds, summary.received


async def drop_pg(url: str, *tables: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        for table in tables:
            await conn.execute(f"DROP TABLE IF EXISTS {table}")
    finally:
        await conn.close()


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), 2):
            return True
    except OSError:
        return False


def report(target: str, rows: int, baseline: float, engine: float) -> None:
    print(
        f"{target:<11} baseline {rows / baseline:>9,.0f} rows/s ({baseline:6.2f} s)   "
        f"dovetail {rows / engine:>9,.0f} rows/s ({engine:6.2f} s)   "
        f"ratio dovetail/baseline = {baseline / engine:.2f}"
    )


def entry(name: str, value: float, baseline: float) -> dict[str, Any]:
    """One ``results.json`` entry of rows/s against a baseline measured in the same run."""
    return {
        "name": name,
        "value": round(value),
        "unit": "rows/s",
        "baseline": round(baseline),
        "ratio": round(value / baseline, 2),
    }


def record_results(entries: list[dict[str, Any]]) -> None:
    """Merge ``entries`` into ``bench/results.json`` (an entry replaces one of its name)."""
    kept: list[dict[str, Any]] = []
    if RESULTS.is_file():
        names = {e["name"] for e in entries}
        kept = [e for e in orjson.loads(RESULTS.read_bytes()) if e.get("name") not in names]
    RESULTS.write_bytes(orjson.dumps([*kept, *entries], option=orjson.OPT_INDENT_2) + b"\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    args = parser.parse_args()
    pg_url = args.postgres if reachable(args.postgres) else None
    project = make_project(args.rows, args.batch_size, pg_url)
    csv_path = project / "data" / "orders.csv"

    results = []
    ceiling = None
    baseline = sqlite_baseline(csv_path, project / "out" / "baseline.db", args.batch_size)
    engine, received = asyncio.run(run_dovetail(project, "bench-sqlite"))
    results.append(("SQLite", received, baseline.seconds, engine))
    if pg_url:
        asyncio.run(drop_pg(pg_url, "bench_baseline", "bench_dovetail", "bench_ceiling"))
        baseline = postgres_baseline(csv_path, pg_url, "bench_baseline", args.batch_size)
        engine, received = asyncio.run(run_dovetail(project, "bench-postgres"))
        results.append(("PostgreSQL", received, baseline.seconds, engine))
        ceiling = postgres_copy_upsert(csv_path, pg_url, "bench_ceiling", args.batch_size)
        asyncio.run(drop_pg(pg_url, "bench_baseline", "bench_dovetail", "bench_ceiling"))
    else:
        print(f"PostgreSQL not reachable at {args.postgres}: measured SQLite only")
    print()
    print(
        f"CSV -> validate -> mapping sheet -> upsert, {args.rows:,} rows, batch {args.batch_size}"
    )
    entries = []
    for target, rows, base_seconds, engine_seconds in results:
        report(target, rows, base_seconds, engine_seconds)
        entries.append(
            entry(f"batch_{target.lower()}_rows_per_s", rows / engine_seconds, rows / base_seconds)
        )
    print("ratio = dovetail throughput / plain-Python throughput, measured in this run")
    if ceiling is not None:  # rows/s counted as for the flow: rows of the CSV
        rows, engine_seconds = results[-1][1], results[-1][3]
        print(
            f"PostgreSQL  COPY->temp->upsert of the mapped rows {rows / ceiling.seconds:>9,.0f}"
            f" rows/s ({ceiling.seconds:6.2f} s)   ratio dovetail/COPY->temp->upsert ="
            f" {ceiling.seconds / engine_seconds:.2f}"
        )
        entries.append(
            entry(
                "batch_postgresql_vs_copy_upsert_rows_per_s",
                rows / engine_seconds,
                rows / ceiling.seconds,
            )
        )
    record_results(entries)
    print(f"results written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
