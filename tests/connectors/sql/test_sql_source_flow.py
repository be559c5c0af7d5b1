"""The ``sql`` source in whole flows, its lint-time checks and its watermark codec."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from dovetail.api import run_flow_async
from dovetail.config.loader import load_flow
from dovetail.connectors.sql.records import json_value
from dovetail.connectors.sql.watermark import coerce_like, decode_value, encode_value
from dovetail.errors import ConfigError
from dovetail.store.sqlite import SqliteStore
from dovetail.testing.components import build_component

FLOW = """\
flow: orders-copy
version: 1.0.0
source:
  sql:
    url: sqlite:///data/shop.db
    table: orders
    watermark: {{column: id}}
    batch_size: 4
sink:
  sql:
    url: sqlite:///data/copy.db
    init_sql: init.sql
    table: orders
    mode: upsert
    key: [id]
delivery:
  idempotency_key: $string(id)
  retry: {{attempts: 2, initial: 1ms, max: 1ms}}
  dead_letter: {dead_letter}
runtime: {{workers: 1, batch_size: 4}}
"""


def make_project(root: Path, *, dead_letter: bool = True) -> Path:
    (root / "flows").mkdir(exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    (root / "dovetail.yaml").write_text("project: test\n")
    (root / "init.sql").write_text(
        "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY,"
        " total NUMERIC CHECK (total >= 0));"
    )
    with sqlite3.connect(root / "data" / "shop.db") as db:
        db.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, total NUMERIC)")
    path = root / "flows" / "orders-copy.yaml"
    path.write_text(FLOW.format(dead_letter=str(dead_letter).lower()))
    return path


def add_orders(root: Path, rows: list[tuple[int, float]]) -> None:
    with sqlite3.connect(root / "data" / "shop.db") as db:
        db.executemany("INSERT INTO orders VALUES (?, ?)", rows)


def copied(root: Path) -> list[tuple[int, float]]:
    with sqlite3.connect(root / "data" / "copy.db") as db:
        return [tuple(row) for row in db.execute("SELECT id, total FROM orders ORDER BY id")]


async def run(path: Path) -> Any:
    store = SqliteStore(path.parent.parent / ".dovetail" / "state.db")
    await store.open()
    try:
        summary = await run_flow_async(load_flow(path), store=store, once=True)
        saved = await store.get_checkpoint("orders-copy", "sql:orders:id")
        return summary, saved
    finally:
        await store.close()


def test_dead_lettered_rows_do_not_hold_the_watermark_back(tmp_path: Path) -> None:
    path = make_project(tmp_path)
    add_orders(tmp_path, [(n, -1.0 if n in (3, 7) else n * 1.5) for n in range(1, 11)])

    summary, saved = anyio.run(run, path)

    assert (summary.received, summary.delivered_total, summary.dead_lettered) == (10, 8, 2)
    assert saved["watermark"] == {"type": "int", "value": 10}
    assert [row[0] for row in copied(tmp_path)] == [1, 2, 4, 5, 6, 8, 9, 10]

    add_orders(tmp_path, [(11, 2.0), (12, 3.0)])
    summary, saved = anyio.run(run, path)
    assert (summary.received, summary.delivered_total, summary.dead_lettered) == (2, 2, 0)
    assert saved["watermark"]["value"] == 12


def test_a_flow_halted_by_a_failure_saves_the_watermark_before_it_only(tmp_path: Path) -> None:
    path = make_project(tmp_path, dead_letter=False)
    add_orders(tmp_path, [(n, -1.0 if n == 6 else 1.0) for n in range(1, 11)])

    with pytest.raises(Exception, match="dead_letter is off"):
        anyio.run(run, path)

    async def saved() -> Any:
        store = SqliteStore(tmp_path / ".dovetail" / "state.db")
        await store.open()
        try:
            return await store.get_checkpoint("orders-copy", "sql:orders:id")
        finally:
            await store.close()

    checkpoint = anyio.run(saved)
    assert checkpoint is not None
    # rows 7 and 8 were delivered, but row 6 is not settled: the watermark stops before it
    assert checkpoint["watermark"]["value"] == 5


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{url: 'sqlite:///x.db', watermark: {column: id}}", "either `table` or `query`"),
        (
            "{url: 'sqlite:///x.db', table: t, query: 'SELECT 1', watermark: {column: id}}",
            "either `table` or `query`",
        ),
        ("{url: 'sqlite:///x.db', query: 'DELETE FROM t', watermark: {column: id}}", "one SELECT"),
        ("{url: 'oracle://h/db', table: t, watermark: {column: id}}", "url must start with"),
        ("{url: 'sqlite:///x.db', table: t}", "watermark"),
        ("{url: 'sqlite:///x.db', table: t, watermark: {column: 'a b'}}", "plain column name"),
        (
            "{url: 'sqlite:///x.db', table: t, watermark: {column: id, key: id}}",
            "another column",
        ),
        (
            "{url: 'sqlite:///x.db', table: t, columns: [name], watermark: {column: id}}",
            "must include the watermark",
        ),
        (
            "{url: 'sqlite:///x.db', query: 'SELECT 1', columns: [a], watermark: {column: a}}",
            "`columns` goes with `table`",
        ),
        ("{url: 'sqlite:///x.db', table: 'a.b.c', watermark: {column: id}}", "schema.name"),
        ("{url: 'sqlite:///x.db', table: t, watermark: {column: id}, batchsize: 3}", "batchsize"),
    ],
)
def test_invalid_config_is_rejected(tmp_path: Path, config: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        build_component("source", f"sql: {config}", tmp_path)


def test_lint_points_at_the_line_of_a_bad_source(tmp_path: Path) -> None:
    path = make_project(tmp_path)
    path.write_text(
        path.read_text().replace("    table: orders\n    watermark", "    watermark", 1)
    )

    with pytest.raises(ConfigError) as caught:
        load_flow(path)

    (problem,) = caught.value.problems
    assert (problem.path, problem.line) == ("flows/orders-copy.yaml", 5)
    assert "source.sql: give either `table` or `query`" in problem.message


WATERMARKS = (
    st.integers()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.floats(allow_nan=False)
    | st.text()
    | st.datetimes()
    | st.datetimes(timezones=st.just(UTC))
    | st.dates()
    | st.times()
    | st.uuids()
    | st.binary()
)


@given(WATERMARKS)
def test_saved_watermarks_come_back_with_their_type(value: Any) -> None:
    back = decode_value(encode_value(value))
    assert type(back) is type(value) or isinstance(value, bytes)
    assert back == value


@pytest.mark.parametrize(
    ("initial", "sample", "expected"),
    [
        ("100", 5, 100),
        ("2024-03-01T08:00:00", datetime(2020, 1, 1), datetime(2024, 3, 1, 8)),
        (date(2024, 3, 1), datetime(2020, 1, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)),
        ("2024-03-01T10:00:00+02:00", datetime(2020, 1, 1), datetime(2024, 3, 1, 8)),
        ("2024-03-01", date(2020, 1, 1), date(2024, 3, 1)),
        ("19.90", Decimal("1.00"), Decimal("19.90")),
        ("2024-03-01T08:00:00", "2020-01-01 00:00:00.000000", "2024-03-01 08:00:00"),
        (datetime(2024, 3, 1, 8), "2020-01-01T00:00:00", "2024-03-01T08:00:00"),
        ("A-100", "A-001", "A-100"),
    ],
)
def test_initial_takes_the_type_of_the_column(initial: Any, sample: Any, expected: Any) -> None:
    assert coerce_like(initial, sample) == expected


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        (Decimal("19.90"), "19.90"),
        (Decimal("1E+2"), "100"),
        (datetime(2024, 3, 1, 8, 0, tzinfo=UTC), "2024-03-01T08:00:00+00:00"),
        (date(2024, 3, 1), "2024-03-01"),
        (time(8, 30), "08:30:00"),
        (UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (b"\x00\x01", "AAE="),
        ([Decimal("1.5"), {"a": date(2024, 1, 1)}], ["1.5", {"a": "2024-01-01"}]),
    ],
)
def test_column_values_become_json_data(value: Any, rendered: Any) -> None:
    assert json_value(value) == rendered
