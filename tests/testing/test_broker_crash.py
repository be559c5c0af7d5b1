"""The pieces of the broker kill -9 plan that need no broker: the project and the table."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from dovetail.config.loader import load_flow
from dovetail.testing.broker_crash import TableWatch, table_flow, table_project

FLOW = "flow: queue-to-table\nversion: 1.0.0\n"
INIT_SQL = "CREATE TABLE IF NOT EXISTS orders (order_id TEXT PRIMARY KEY, amount INTEGER);"


def test_the_project_holds_the_flow_and_its_table_script(tmp_path: Path) -> None:
    database = table_project(tmp_path, FLOW, INIT_SQL)
    assert database == tmp_path / "data" / "out.db"
    assert (tmp_path / "flows" / "queue-to-table.yaml").read_text() == FLOW
    assert (tmp_path / "sql" / "init.sql").read_text() == INIT_SQL
    assert (tmp_path / "dovetail.yaml").read_text() == "project: crash-queue-to-table\n"
    assert (tmp_path / "data").is_dir()


def test_a_table_not_yet_written_reads_as_empty(tmp_path: Path) -> None:
    table = TableWatch(tmp_path / "out.db", "orders", "order_id")
    assert table.keys() == [] and table.count() == 0
    sqlite3.connect(tmp_path / "out.db").close()  # the file, without the table
    assert table.keys() == [] and table.count() == 0


def test_a_locked_table_keeps_its_last_count(tmp_path: Path) -> None:
    database = tmp_path / "out.db"
    with sqlite3.connect(database) as db:
        db.execute(INIT_SQL)
        db.executemany("INSERT INTO orders VALUES (?, ?)", [("A", 1), ("B", 2)])
    table = TableWatch(database, "orders", "order_id")
    assert sorted(table.keys()) == ["A", "B"] and table.count() == 2
    writer = sqlite3.connect(database, isolation_level=None)
    try:
        writer.execute("BEGIN EXCLUSIVE")
        writer.execute("INSERT INTO orders VALUES ('C', 3)")
        assert table.count() == 2  # the writer holds the lock: the last count, no wait
        assert table.keys() == []
        writer.execute("COMMIT")
    finally:
        writer.close()
    assert table.count() == 3


def test_the_table_flow_loads_and_upserts_by_its_key(tmp_path: Path) -> None:
    text = table_flow(
        "queue-to-table",
        source="file: {path: inbox/*.jsonl, format: jsonl}",
        steps='- map: {jsonata: \'{"order_id": id, "amount": total}\'}',
        table="orders",
        key="order_id",
        idempotency_key="id",
    )
    table_project(tmp_path, text, INIT_SQL)
    flow = load_flow(tmp_path / "flows" / "queue-to-table.yaml")
    assert flow.spec.delivery.idempotency_key == "id"
    assert [ref.spec.name for ref in flow.steps] == ["map"]
    sink = flow.sinks["sink"]
    assert sink.spec.name == "sql"
    assert (sink.config.table, sink.config.mode, sink.config.key) == (
        "orders",
        "upsert",
        ["order_id"],
    )
