"""The ``sql`` sink against the real PostgreSQL, through COPY and through multi-row INSERT."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sql_support import build_sink, envelopes, pg_execute, pg_fetch, write_once

from dovetail.connectors.sql.copy import stage_name
from dovetail.errors import PermanentError, TransientError

pytestmark = pytest.mark.postgres

ORDERS_DDL = """
CREATE TABLE IF NOT EXISTS {schema}.orders (
    order_id integer PRIMARY KEY,
    email text NOT NULL,
    country varchar(2),
    total numeric(10, 2) CONSTRAINT total_not_negative CHECK (total >= 0),
    status text DEFAULT 'new',
    ordered_on date,
    created_at timestamptz,
    local_time timestamp,
    paid boolean,
    ref uuid,
    attributes jsonb
);
"""

COPY_MODES = pytest.mark.parametrize("copy", ["true", "false"], ids=["copy", "insert"])


@pytest.fixture
def orders(postgres_url: str, pg_schema: str) -> str:
    """An orders table in the test's schema; its qualified name."""
    asyncio.run(pg_execute(postgres_url, ORDERS_DDL.format(schema=pg_schema)))
    return f"{pg_schema}.orders"


def sink_yaml(url: str, table: str, **extra: str) -> str:
    fields = {"url": f"'{url}'", "table": table, **extra}
    return "sql: {" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}"


def stored(url: str, table: str) -> list[dict[str, Any]]:
    return asyncio.run(pg_fetch(url, f"SELECT * FROM {table} ORDER BY order_id"))


@COPY_MODES
def test_insert_writes_every_row(postgres_url: str, orders: str, tmp_path: Path, copy: str) -> None:
    sink = build_sink(sink_yaml(postgres_url, orders, copy=copy), tmp_path)
    payloads = [{"order_id": n, "email": f"{n}@x", "total": n} for n in range(1, 101)]

    assert asyncio.run(write_once(sink, payloads)) == [None] * 100
    result = stored(postgres_url, orders)
    assert [r["order_id"] for r in result] == list(range(1, 101))
    assert result[9]["total"] == Decimal("10.00")
    assert result[9]["status"] == "new"


@COPY_MODES
def test_upsert_overwrites_existing_rows_and_keeps_unmapped_columns(
    postgres_url: str, orders: str, tmp_path: Path, copy: str
) -> None:
    sink = build_sink(
        sink_yaml(postgres_url, orders, mode="upsert", key="[order_id]", copy=copy), tmp_path
    )

    async def scenario() -> list[list[BaseException | None]]:
        await sink.open()
        try:
            first = await sink.write(
                envelopes(
                    [
                        {"order_id": 1, "email": "old@x", "status": "paid"},
                        {"order_id": 2, "email": "keep@x"},
                    ]
                )
            )
            second = await sink.write(
                envelopes([{"order_id": 1, "email": "new@x"}, {"order_id": 3, "email": "c@x"}])
            )
            return [first, second]
        finally:
            await sink.close()

    assert asyncio.run(scenario()) == [[None, None], [None, None]]
    assert [(r["order_id"], r["email"], r["status"]) for r in stored(postgres_url, orders)] == [
        (1, "new@x", "paid"),
        (2, "keep@x", "new"),
        (3, "c@x", "new"),
    ]


def test_init_sql_runs_a_script_with_a_function_body(
    postgres_url: str, pg_schema: str, tmp_path: Path
) -> None:
    (tmp_path / "init.sql").write_text(
        f"""
        CREATE TABLE IF NOT EXISTS {pg_schema}.events (id int PRIMARY KEY, note text);
        CREATE OR REPLACE FUNCTION {pg_schema}.stamp() RETURNS trigger AS $$
        BEGIN
            NEW.note := coalesce(NEW.note, 'stamped; by trigger');
            RETURN NEW;
        END;
        $$ LANGUAGE plpgsql;
        CREATE OR REPLACE TRIGGER stamp BEFORE INSERT ON {pg_schema}.events
            FOR EACH ROW EXECUTE FUNCTION {pg_schema}.stamp();
        """
    )
    yaml = sink_yaml(postgres_url, f"{pg_schema}.events", init_sql="init.sql")

    assert asyncio.run(write_once(build_sink(yaml, tmp_path), [{"id": 1}])) == [None]
    assert asyncio.run(write_once(build_sink(yaml, tmp_path), [{"id": 2, "note": "own"}])) == [None]

    rows = asyncio.run(pg_fetch(postgres_url, f"SELECT * FROM {pg_schema}.events ORDER BY id"))
    assert rows == [{"id": 1, "note": "stamped; by trigger"}, {"id": 2, "note": "own"}]


@COPY_MODES
def test_columns_mapping_evaluates_jsonata(
    postgres_url: str, orders: str, tmp_path: Path, copy: str
) -> None:
    sink = build_sink(
        "sql:\n"
        f"  url: '{postgres_url}'\n"
        f"  table: {orders}\n"
        "  mode: upsert\n"
        "  key: [order_id]\n"
        f"  copy: {copy}\n"
        "  columns:\n"
        "    order_id: id\n"
        "    email: $lowercase(customer.email)\n"
        "    country: $uppercase(customer.country)\n"
        "    total: $sum(lines.(qty * price))\n"
        '    attributes: \'{"channel": channel, "lines": $count(lines)}\'\n',
        tmp_path,
    )
    payload = {
        "id": 9,
        "channel": "web",
        "customer": {"email": "Bo@X.org", "country": "de"},
        "lines": [{"qty": 3, "price": 1.1}, {"qty": 1, "price": 0.7}],
    }

    assert asyncio.run(write_once(sink, [payload])) == [None]
    (row,) = stored(postgres_url, orders)
    assert (row["email"], row["country"], row["total"]) == ("bo@x.org", "DE", Decimal("4.00"))
    assert row["attributes"] in ('{"lines": 2, "channel": "web"}', '{"channel": "web", "lines": 2}')


@COPY_MODES
@pytest.mark.parametrize("mode", ["insert", "upsert"])
def test_rows_the_database_refuses_fail_alone_while_good_rows_land(
    postgres_url: str, orders: str, tmp_path: Path, copy: str, mode: str
) -> None:
    sink = build_sink(
        sink_yaml(postgres_url, orders, mode=mode, key="[order_id]", copy=copy), tmp_path
    )
    payloads: list[Any] = [
        {"order_id": 1, "email": "a@x", "total": 1},
        {"order_id": 2, "email": None},  # NOT NULL
        {"order_id": 3, "email": "c@x", "total": -1},  # CHECK
        {"order_id": 4, "email": "secret\x00value"},  # NUL byte: invalid text
        {"order_id": 5, "email": "e@x", "total": "99999999999"},  # numeric(10, 2) overflow
        {"order_id": 6, "email": "f@x"},
    ]
    if mode == "insert":
        payloads.append({"order_id": 1, "email": "dup@x"})  # primary key

    results = asyncio.run(write_once(sink, payloads))

    assert results[0] is None
    assert results[5] is None
    failed = list(results[1:5]) + results[6:]
    assert all(isinstance(r, PermanentError) for r in failed)
    assert "'email'" in str(results[1])
    assert "total_not_negative" in str(results[2])
    assert "22021" in str(results[3])
    assert "22003" in str(results[4])
    if mode == "insert":
        assert "orders_pkey" in str(results[6])
    for error in failed:
        assert "secret" not in str(error)
        assert "dup@x" not in str(error)
        assert "99999999999" not in str(error)
    assert [(r["order_id"], r["email"]) for r in stored(postgres_url, orders)] == [
        (1, "a@x"),
        (6, "f@x"),
    ]


@COPY_MODES
def test_values_are_converted_to_the_column_types(
    postgres_url: str, orders: str, tmp_path: Path, copy: str
) -> None:
    sink = build_sink(sink_yaml(postgres_url, orders, copy=copy), tmp_path)
    ref = uuid.uuid4()
    payloads = [
        {
            "order_id": "7",
            "email": 12345,
            "country": "NL",
            "total": "19.9",
            "ordered_on": "2024-02-29",
            "created_at": "2024-02-29T23:30:00+02:00",
            "local_time": "2024-02-29T23:30:00+02:00",
            "paid": "true",
            "ref": str(ref),
            "attributes": {"gift": True, "tags": ["a", "b"]},
        },
        {"order_id": 8.0, "email": "b@x", "created_at": "2024-03-01T08:00:00", "paid": 1},
    ]

    assert asyncio.run(write_once(sink, payloads)) == [None, None]
    first, second = stored(postgres_url, orders)
    assert first["email"] == "12345"
    assert first["total"] == Decimal("19.90")
    assert first["ordered_on"] == dt.date(2024, 2, 29)
    assert first["created_at"] == dt.datetime(2024, 2, 29, 21, 30, tzinfo=dt.UTC)
    assert first["local_time"] == dt.datetime(2024, 2, 29, 21, 30)
    assert first["paid"] is True
    assert first["ref"] == ref
    assert first["attributes"] in ('{"gift": true, "tags": ["a", "b"]}',)
    assert second["order_id"] == 8
    assert second["created_at"] == dt.datetime(2024, 3, 1, 8, 0, tzinfo=dt.UTC)


def test_a_value_that_cannot_be_converted_fails_that_message_naming_the_column(
    postgres_url: str, orders: str, tmp_path: Path
) -> None:
    sink = build_sink(sink_yaml(postgres_url, orders), tmp_path)
    payloads = [
        {"order_id": 1, "email": "a@x", "country": "NLD"},
        {"order_id": 2, "email": "b@x", "ref": "not-a-uuid"},
        {"order_id": 3, "email": "c@x", "total": "12,50"},
        {"order_id": 4, "email": "d@x"},
    ]

    results = asyncio.run(write_once(sink, payloads))

    assert "'country'" in str(results[0])
    assert "longer than 2" in str(results[0])
    assert "'ref'" in str(results[1])
    assert "'total'" in str(results[2])
    assert "12,50" not in str(results[2])
    assert results[3] is None
    assert [r["order_id"] for r in stored(postgres_url, orders)] == [4]


@COPY_MODES
def test_duplicate_keys_in_one_batch_apply_in_order_last_wins(
    postgres_url: str, orders: str, tmp_path: Path, copy: str
) -> None:
    sink = build_sink(
        sink_yaml(postgres_url, orders, mode="upsert", key="[order_id]", copy=copy), tmp_path
    )
    payloads = [
        {"order_id": 1, "email": "first@x", "total": 1},
        {"order_id": 2, "email": "other@x"},
        {"order_id": 1, "email": "second@x", "total": 2},
        {"order_id": 1, "status": "shipped"},
    ]

    assert asyncio.run(write_once(sink, payloads)) == [None] * 4
    assert [
        (r["order_id"], r["email"], r["total"], r["status"]) for r in stored(postgres_url, orders)
    ] == [(1, "second@x", Decimal("2.00"), "shipped"), (2, "other@x", None, "new")]


def test_nothing_listening_fails_the_batch_as_transient(tmp_path: Path) -> None:
    sink = build_sink(
        "sql: {url: 'postgresql://postgres@127.0.0.1:1/test', table: orders, timeout: 2s}",
        tmp_path,
    )

    results = asyncio.run(write_once(sink, [{"order_id": 1}, {"order_id": 2}]))

    assert all(isinstance(r, TransientError) for r in results)
    assert "cannot reach the database" in str(results[0])


@COPY_MODES
def test_a_lock_wait_past_the_timeout_is_transient_and_the_retry_succeeds(
    postgres_url: str, orders: str, tmp_path: Path, copy: str
) -> None:
    import asyncpg

    asyncio.run(pg_execute(postgres_url, f"INSERT INTO {orders} (order_id, email) VALUES (1, 'a')"))
    sink = build_sink(
        sink_yaml(postgres_url, orders, mode="upsert", key="[order_id]", copy=copy, timeout="1s"),
        tmp_path,
    )

    async def scenario() -> tuple[list[BaseException | None], list[BaseException | None]]:
        await sink.open()
        holder = await asyncpg.connect(postgres_url)
        try:
            transaction = holder.transaction()
            await transaction.start()
            await holder.execute(f"SELECT * FROM {orders} WHERE order_id = 1 FOR UPDATE")
            blocked = await sink.write(envelopes([{"order_id": 1, "email": "b"}]))
            await transaction.rollback()
            retried = await sink.write(envelopes([{"order_id": 1, "email": "b"}]))
            return blocked, retried
        finally:
            await holder.close()
            await sink.close()

    blocked, retried = asyncio.run(scenario())

    assert isinstance(blocked[0], TransientError)
    assert retried == [None]
    assert stored(postgres_url, orders)[0]["email"] == "b"


def test_open_fails_when_the_upsert_key_is_not_unique(
    postgres_url: str, orders: str, tmp_path: Path
) -> None:
    sink = build_sink(sink_yaml(postgres_url, orders, mode="upsert", key="[email]"), tmp_path)

    with pytest.raises(PermanentError, match="unique constraint"):
        asyncio.run(sink.open())
    asyncio.run(sink.close())


def test_upsert_on_a_unique_constraint_that_is_not_the_primary_key(
    postgres_url: str, pg_schema: str, tmp_path: Path
) -> None:
    asyncio.run(
        pg_execute(
            postgres_url,
            f"CREATE TABLE {pg_schema}.customers (id serial PRIMARY KEY, email text NOT NULL,"
            f" name text, CONSTRAINT customers_email UNIQUE (email))",
        )
    )
    sink = build_sink(
        sink_yaml(postgres_url, f"{pg_schema}.customers", mode="upsert", key="[email]"), tmp_path
    )

    results = asyncio.run(
        write_once(sink, [{"email": "a@x", "name": "A"}, {"email": "a@x", "name": "A2"}])
    )

    assert results == [None, None]
    rows = asyncio.run(pg_fetch(postgres_url, f"SELECT * FROM {pg_schema}.customers"))
    assert [(r["email"], r["name"]) for r in rows] == [("a@x", "A2")]


def test_a_trigger_that_raises_rejects_the_row_without_quoting_it(
    postgres_url: str, orders: str, pg_schema: str, tmp_path: Path
) -> None:
    asyncio.run(
        pg_execute(
            postgres_url,
            f"""
            CREATE FUNCTION {pg_schema}.no_blocked() RETURNS trigger AS $$
            BEGIN
                IF NEW.email LIKE '%blocked%' THEN
                    RAISE EXCEPTION 'customer % is blocked', NEW.email;
                END IF;
                RETURN NEW;
            END;
            $$ LANGUAGE plpgsql;
            CREATE TRIGGER no_blocked BEFORE INSERT ON {orders}
                FOR EACH ROW EXECUTE FUNCTION {pg_schema}.no_blocked();
            """,
        )
    )
    sink = build_sink(sink_yaml(postgres_url, orders), tmp_path)

    results = asyncio.run(
        write_once(sink, [{"order_id": 1, "email": "ok@x"}, {"order_id": 2, "email": "blocked@x"}])
    )

    assert results[0] is None
    assert isinstance(results[1], PermanentError)
    assert "P0001" in str(results[1])
    assert "blocked@x" not in str(results[1])
    assert [r["order_id"] for r in stored(postgres_url, orders)] == [1]


async def discard_temp(sink: Any) -> None:
    """``DISCARD TEMP`` on the sink's (only) pooled connection, as a pooler might run it."""
    async with sink._engine.connect() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
        await driver.execute("DISCARD TEMP")


def test_copy_upserts_reuse_one_staging_table_per_connection(
    postgres_url: str, orders: str, tmp_path: Path
) -> None:
    sink = build_sink(
        sink_yaml(postgres_url, orders, mode="upsert", key="[order_id]", pool_size="1"), tmp_path
    )
    stage = stage_name(orders, ["order_id", "email"])  # the test schema needs no quotes
    staging = f"SELECT oid FROM pg_class WHERE relname = '{stage}' AND relpersistence = 't'"

    async def scenario() -> list[list[Any]]:
        seen: list[list[Any]] = []
        await sink.open()
        try:
            for start in (1, 3, 1, 5):
                batch = [{"order_id": n, "email": f"{n}@x"} for n in (start, start + 1)]
                assert await sink.write(envelopes(batch)) == [None, None]
                found = await pg_fetch(postgres_url, staging)
                seen.append(sorted(row["oid"] for row in found))
                if len(seen) == 3:  # the connection loses it
                    await discard_temp(sink)
        finally:
            await sink.close()
        return seen

    first, second, third, fourth = asyncio.run(scenario())

    assert len(first) == 1  # created once, kept for the next batches on the connection
    assert first == second == third
    assert len(fourth) == 1 and fourth != first  # made again when it was gone
    assert [r["order_id"] for r in stored(postgres_url, orders)] == [1, 2, 3, 4, 5, 6]
