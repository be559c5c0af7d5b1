"""The ``sql`` sink against real SQLite files."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sql_support import build_sink, envelopes, write_once

from dovetail.errors import PermanentError, TransientError

ORDERS_DDL = """
CREATE TABLE IF NOT EXISTS orders (
    order_id INTEGER PRIMARY KEY,
    email TEXT NOT NULL,
    total NUMERIC CHECK (total >= 0),
    status TEXT DEFAULT 'new',
    ordered_on DATE,
    created_at DATETIME,
    paid BOOLEAN
);
"""


def rows(db: Path, sql: str = "SELECT * FROM orders ORDER BY order_id") -> list[dict[str, Any]]:
    connection = sqlite3.connect(db)
    connection.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in connection.execute(sql)]
    finally:
        connection.close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "orders.sql").write_text(ORDERS_DDL)
    return tmp_path


def sink_yaml(**extra: str) -> str:
    fields = {
        "url": "'sqlite:///data/orders.db'",
        "table": "orders",
        "init_sql": "sql/orders.sql",
        **extra,
    }
    return "sql: {" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}"


def test_insert_writes_every_row_under_the_project_dir(project: Path) -> None:
    sink = build_sink(sink_yaml(), project)
    payloads = [{"order_id": n, "email": f"c{n}@example.com", "total": n * 10} for n in (1, 2, 3)]

    results = asyncio.run(write_once(sink, payloads))

    assert results == [None, None, None]
    stored = rows(project / "data" / "orders.db")
    assert [(r["order_id"], r["email"], r["total"], r["status"]) for r in stored] == [
        (1, "c1@example.com", 10, "new"),
        (2, "c2@example.com", 20, "new"),
        (3, "c3@example.com", 30, "new"),
    ]


def test_fields_that_are_not_columns_are_ignored(project: Path) -> None:
    sink = build_sink(sink_yaml(), project)

    results = asyncio.run(
        write_once(sink, [{"order_id": 1, "email": "a@x", "gift_wrap": True, "lines": [1, 2]}])
    )

    assert results == [None]
    assert rows(project / "data" / "orders.db")[0]["email"] == "a@x"


def test_upsert_overwrites_mapped_columns_and_keeps_the_others(project: Path) -> None:
    sink = build_sink(sink_yaml(mode="upsert", key="[order_id]"), project)

    async def scenario() -> list[list[BaseException | None]]:
        await sink.open()
        try:
            first = await sink.write(
                envelopes([{"order_id": 1, "email": "old@x", "total": 5, "status": "paid"}])
            )
            second = await sink.write(envelopes([{"order_id": 1, "email": "new@x", "total": 7}]))
            return [first, second]
        finally:
            await sink.close()

    assert asyncio.run(scenario()) == [[None], [None]]
    (stored,) = rows(project / "data" / "orders.db")
    assert (stored["email"], stored["total"], stored["status"]) == ("new@x", 7, "paid")


def test_init_sql_runs_statements_with_semicolons_inside_literals_and_triggers(
    tmp_path: Path,
) -> None:
    (tmp_path / "init.sql").write_text(
        """
        -- audit table; created once
        CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, note TEXT DEFAULT 'a;b');
        CREATE TABLE IF NOT EXISTS audit (event_id INTEGER, note TEXT);
        CREATE TRIGGER IF NOT EXISTS events_audit AFTER INSERT ON events
        BEGIN
            INSERT INTO audit (event_id, note) VALUES (NEW.id, 'seen; logged');
        END;
        /* trailing comment; with a semicolon */
        """
    )
    yaml = "sql: {url: 'sqlite:///e.db', table: events, init_sql: init.sql}"

    assert asyncio.run(write_once(build_sink(yaml, tmp_path), [{"id": 1}])) == [None]
    # Opening again re-runs the idempotent script.
    assert asyncio.run(write_once(build_sink(yaml, tmp_path), [{"id": 2}])) == [None]

    db = tmp_path / "e.db"
    assert rows(db, "SELECT id, note FROM events") == [
        {"id": 1, "note": "a;b"},
        {"id": 2, "note": "a;b"},
    ]
    assert rows(db, "SELECT * FROM audit") == [
        {"event_id": 1, "note": "seen; logged"},
        {"event_id": 2, "note": "seen; logged"},
    ]


def test_columns_mapping_evaluates_paths_and_jsonata_expressions(project: Path) -> None:
    sink = build_sink(
        "sql:\n"
        "  url: 'sqlite:///data/orders.db'\n"
        "  table: orders\n"
        "  init_sql: sql/orders.sql\n"
        "  mode: upsert\n"
        "  key: [order_id]\n"
        "  columns:\n"
        "    order_id: id\n"
        "    email: $lowercase(customer.email)\n"
        "    total: $sum(lines.(qty * price))\n"
        "    status: \"paid ? 'paid' : 'open'\"\n",
        project,
    )
    payload = {
        "id": "42",
        "paid": True,
        "customer": {"email": "Ann@Example.COM"},
        "lines": [{"qty": 2, "price": 2.5}, {"qty": 1, "price": 10}],
    }

    assert asyncio.run(write_once(sink, [payload])) == [None]
    (stored,) = rows(project / "data" / "orders.db")
    assert stored["order_id"] == 42
    assert stored["email"] == "ann@example.com"
    assert stored["total"] == 15
    assert stored["status"] == "paid"


def test_mapping_failure_fails_only_that_message(project: Path) -> None:
    sink = build_sink(
        sink_yaml(columns="{order_id: id, email: email, total: '$number(total)'}"), project
    )

    results = asyncio.run(
        write_once(
            sink,
            [
                {"id": 1, "email": "a@x", "total": "3.5"},
                {"id": 2, "email": "b@x", "total": "not a number"},
            ],
        )
    )

    assert results[0] is None
    assert isinstance(results[1], PermanentError)
    assert [r["order_id"] for r in rows(project / "data" / "orders.db")] == [1]


def test_rows_the_database_refuses_fail_alone_while_good_rows_land(project: Path) -> None:
    sink = build_sink(sink_yaml(), project)
    payloads = [
        {"order_id": 1, "email": "a@x", "total": 1},
        {"order_id": 2, "email": None, "total": 1},  # NOT NULL
        {"order_id": 3, "email": "c@x", "total": -4},  # CHECK
        {"order_id": 1, "email": "dup@x", "total": 2},  # primary key, insert mode
        {"order_id": 5, "email": "e@x", "total": 5},
    ]

    results = asyncio.run(write_once(sink, payloads))

    assert results[0] is None
    assert results[4] is None
    for failed in (results[1], results[2], results[3]):
        assert isinstance(failed, PermanentError)
        assert not isinstance(failed, TransientError)
    assert "orders.email" in str(results[1])
    assert "CHECK" in str(results[2])
    assert "orders.order_id" in str(results[3])
    for failed in (results[1], results[2], results[3]):
        assert "dup@x" not in str(failed)
        assert "c@x" not in str(failed)
    stored = rows(project / "data" / "orders.db")
    assert [(r["order_id"], r["email"]) for r in stored] == [(1, "a@x"), (5, "e@x")]


def test_values_are_converted_to_the_column_types(project: Path) -> None:
    sink = build_sink(sink_yaml(), project)
    payloads = [
        {
            "order_id": "7",
            "email": 12345,
            "total": "19.90",
            "ordered_on": "2024-02-29",
            "created_at": "2024-02-29T23:30:00+02:00",
            "paid": "yes",
        },
        {"order_id": 8.0, "email": "b@x", "ordered_on": "2024-03-01T08:00:00", "paid": 0},
    ]

    assert asyncio.run(write_once(sink, payloads)) == [None, None]
    first, second = rows(project / "data" / "orders.db")
    assert first["order_id"] == 7
    assert first["email"] == "12345"
    assert first["total"] == pytest.approx(19.9)
    assert first["ordered_on"] == "2024-02-29"
    assert first["created_at"].startswith("2024-02-29 21:30:00")  # converted to UTC
    assert first["paid"] == 1
    assert (second["order_id"], second["ordered_on"], second["paid"]) == (8, "2024-03-01", 0)


def test_a_value_that_cannot_be_converted_fails_that_message_naming_the_column(
    project: Path,
) -> None:
    sink = build_sink(sink_yaml(), project)
    payloads = [
        {"order_id": 1, "email": "a@x", "ordered_on": "31/12/2024"},
        {"order_id": "1.5", "email": "b@x"},
        {"order_id": 3, "email": "c@x", "paid": "maybe"},
        {"order_id": 4, "email": "d@x"},
    ]

    results = asyncio.run(write_once(sink, payloads))

    assert "'ordered_on'" in str(results[0])
    assert "'order_id'" in str(results[1])
    assert "'paid'" in str(results[2])
    assert all(isinstance(r, PermanentError) for r in results[:3])
    assert "31/12/2024" not in str(results[0])
    assert results[3] is None
    assert [r["order_id"] for r in rows(project / "data" / "orders.db")] == [4]


def test_duplicate_keys_in_one_batch_apply_in_order_last_wins(project: Path) -> None:
    sink = build_sink(sink_yaml(mode="upsert", key="[order_id]"), project)
    payloads = [
        {"order_id": 1, "email": "first@x", "total": 1},
        {"order_id": 2, "email": "other@x", "total": 2},
        {"order_id": 1, "email": "second@x", "total": 3},
        {"order_id": 1, "status": "shipped"},  # partial: keeps email and total
    ]

    assert asyncio.run(write_once(sink, payloads)) == [None] * 4
    stored = rows(project / "data" / "orders.db")
    assert [(r["order_id"], r["email"], r["total"], r["status"]) for r in stored] == [
        (1, "second@x", 3, "shipped"),
        (2, "other@x", 2, "new"),
    ]


def test_payload_without_usable_fields_or_key_is_permanent(project: Path) -> None:
    sink = build_sink(sink_yaml(mode="upsert", key="[order_id]"), project)

    results = asyncio.run(
        write_once(sink, [["not", "an", "object"], {"unrelated": 1}, {"email": "a@x"}])
    )

    assert all(isinstance(r, PermanentError) for r in results)
    assert "not an object" in str(results[0])
    assert "no field" in str(results[1])
    assert "'order_id'" in str(results[2])


def test_large_batches_are_split_into_transactions_of_batch_size(project: Path) -> None:
    sink = build_sink(sink_yaml(batch_size="3"), project)
    payloads: list[dict[str, Any]] = [
        {"order_id": n, "email": f"{n}@x", "total": n} for n in range(1, 11)
    ]
    payloads[4]["total"] = -1

    results = asyncio.run(write_once(sink, payloads))

    assert [r is None for r in results] == [True] * 4 + [False] + [True] * 5
    assert [r["order_id"] for r in rows(project / "data" / "orders.db")] == [
        1,
        2,
        3,
        4,
        6,
        7,
        8,
        9,
        10,
    ]


def test_locked_database_fails_the_batch_as_transient_then_succeeds(project: Path) -> None:
    sink = build_sink(sink_yaml(timeout="200ms"), project)

    async def scenario() -> tuple[list[BaseException | None], list[BaseException | None]]:
        await sink.open()
        blocker = sqlite3.connect(project / "data" / "orders.db", isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            blocked = await sink.write(envelopes([{"order_id": 1, "email": "a@x"}] * 1))
            blocker.execute("ROLLBACK")
            retried = await sink.write(envelopes([{"order_id": 1, "email": "a@x"}]))
            return blocked, retried
        finally:
            blocker.close()
            await sink.close()

    blocked, retried = asyncio.run(scenario())

    assert isinstance(blocked[0], TransientError)
    assert "locked" in str(blocked[0])
    assert retried == [None]


def test_open_fails_when_the_table_is_missing(tmp_path: Path) -> None:
    sink = build_sink("sql: {url: 'sqlite:///x.db', table: nowhere}", tmp_path)

    with pytest.raises(PermanentError, match="nowhere does not exist"):
        asyncio.run(sink.open())
    asyncio.run(sink.close())


def test_open_fails_when_the_upsert_key_is_not_unique(project: Path) -> None:
    sink = build_sink(sink_yaml(mode="upsert", key="[email]"), project)

    with pytest.raises(PermanentError, match="not its primary key or a unique constraint"):
        asyncio.run(sink.open())
    asyncio.run(sink.close())


def test_open_fails_when_a_mapped_column_does_not_exist(project: Path) -> None:
    sink = build_sink(sink_yaml(columns="{order_id: id, shoe_size: size}"), project)

    with pytest.raises(PermanentError, match=r"no column.*shoe_size"):
        asyncio.run(sink.open())
    asyncio.run(sink.close())


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("sql: {url: 'sqlite:///x.db', table: t, mode: upsert}", "needs `key`"),
        ("sql: {url: 'mongodb://h/db', table: t}", "url must start with"),
        ("sql: {url: 'sqlite:///x.db', table: t, copy: maybe}", "copy"),
        ("sql: {url: 'sqlite:///x.db', table: t, batchsize: 3}", "batchsize"),
        (
            "sql: {url: 'sqlite:///x.db', table: t, mode: upsert, key: [id], columns: {x: y}}",
            "must be mapped",
        ),
    ],
)
def test_invalid_config_is_rejected(tmp_path: Path, snippet: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        build_sink(snippet, tmp_path)


def test_no_row_value_reaches_the_logs(project: Path, caplog: pytest.LogCaptureFixture) -> None:
    sink = build_sink(sink_yaml(), project)
    payloads = [
        {"order_id": 1, "email": "private-one@example.com", "total": 1},
        {"order_id": 1, "email": "private-two@example.com", "total": -1},
    ]

    with caplog.at_level(logging.DEBUG):
        results = asyncio.run(write_once(sink, payloads))

    assert results[0] is None
    assert isinstance(results[1], PermanentError)
    assert "private" not in caplog.text
    assert "private" not in str(results[1])
