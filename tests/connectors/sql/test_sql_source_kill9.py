"""SIGKILL a real ``dovetail run --once`` reading PostgreSQL rows into a MariaDB upsert, rerun.

Every row must reach the target with its values; rows read again after a kill are absorbed
by the idempotency key and the upsert.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from databases import Database, open_database

from dovetail.testing.crash import CrashHarness

ROWS = 40_000
FLOW = """\
flow: orders-to-shop
version: 1.0.0
source:
  sql:
    url: '{source_url}'
    table: {source}
    watermark: {{column: updated_at, key: id}}
    batch_size: 250
sink:
  sql:
    url: '{target_url}'
    table: {target}
    mode: upsert
    key: [id]
delivery:
  idempotency_key: $string(id) & '@' & updated_at
runtime: {{batch_size: 250, workers: 2}}
"""


@pytest.fixture
def databases(tmp_path: Path) -> Iterator[tuple[Database, Database]]:
    source, target = open_database("postgresql", tmp_path), open_database("mariadb", tmp_path)
    try:
        yield source, target
    finally:
        source.drop_tables()
        target.drop_tables()


@pytest.mark.slow
def test_kill9_loses_no_row(tmp_path: Path, databases: tuple[Database, Database]) -> None:
    source, target = databases
    source_table, target_table = source.table("orders"), target.table("orders_copy")
    source.execute(
        f"CREATE TABLE {source_table} (id INTEGER PRIMARY KEY, updated_at TIMESTAMP NOT NULL,"
        " total NUMERIC(10, 2))",
        # groups of 7 rows share a timestamp: batches end inside groups
        f"INSERT INTO {source_table} SELECT n, TIMESTAMP '2024-01-01' + (n / 7) * INTERVAL"
        f" '1 second', n % 997 + 0.25 FROM generate_series(1, {ROWS}) AS n",
    )
    target.execute(
        f"CREATE TABLE {target_table} (id INT PRIMARY KEY, updated_at DATETIME(6),"
        " total DECIMAL(10, 2))"
    )
    (tmp_path / "flows").mkdir()
    (tmp_path / "dovetail.yaml").write_text("project: crash\n")
    (tmp_path / "flows" / "orders-to-shop.yaml").write_text(
        FLOW.format(
            source_url=source.url,
            source=source_table,
            target_url=target.url,
            target=target_table,
        )
    )

    def count() -> int:
        return int(target.rows(f"SELECT count(*) FROM {target_table}")[0][0])

    harness = CrashHarness(tmp_path, kills=6, interval=(0.1, 0.4), activity=count)
    report = harness.run(
        expected=[str(n) for n in range(1, ROWS + 1)],
        delivered=lambda: [str(row[0]) for row in target.rows(f"SELECT id FROM {target_table}")],
    )

    print(report.describe())
    assert report.ok, report.describe()
    assert report.kills >= 3, report.describe()
    wrong = target.rows(
        f"SELECT count(*) FROM {target_table} WHERE total <> MOD(id, 997) + 0.25"
        " OR updated_at <> TIMESTAMP '2024-01-01 00:00:00' + INTERVAL FLOOR(id / 7) SECOND"
    )
    assert wrong == [(0,)]
