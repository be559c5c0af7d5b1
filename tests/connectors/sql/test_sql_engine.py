"""URLs, script splitting and the translation of real database errors."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sql_support import pg_execute

from dovetail.connectors.sql.engine import (
    RowRejected,
    backend_of,
    resolve_url,
    split_sql_script,
    translate_error,
)
from dovetail.errors import PermanentError, TransientError


def test_relative_sqlite_path_is_resolved_in_the_project_dir(tmp_path: Path) -> None:
    url = resolve_url("sqlite:///data/orders.db", tmp_path)

    assert url.drivername == "sqlite+aiosqlite"
    assert url.database == str(tmp_path / "data" / "orders.db")


def test_absolute_sqlite_path_and_postgres_alias_are_kept(tmp_path: Path) -> None:
    assert resolve_url("sqlite:////var/lib/x.db", tmp_path).database == "/var/lib/x.db"
    url = resolve_url("postgres://app:pw@db.internal:6432/erp", tmp_path)
    assert url.drivername == "postgresql+asyncpg"
    assert (url.host, url.port, url.database, url.password) == ("db.internal", 6432, "erp", "pw")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("oracle://scott@localhost/shop", "unsupported database URL scheme 'oracle'"),
        ("mysql+asyncmy://root@localhost/shop", "driver 'asyncmy' is not supported"),
        ("postgresql+psycopg2://h/db", "driver 'psycopg2' is not supported"),
        ("orders.db", "unsupported database URL scheme ''"),
    ],
)
def test_unsupported_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        backend_of(url)


def test_script_splits_at_statement_ends_only() -> None:
    script = """
    -- comment; not a statement
    CREATE TABLE a (x TEXT DEFAULT ';');
    CREATE TABLE "b;c" (y INT);
    CREATE TRIGGER t AFTER INSERT ON a BEGIN
        INSERT INTO "b;c" VALUES (1);
        INSERT INTO "b;c" VALUES (2);
    END;
    /* block; comment */
    INSERT INTO a VALUES ('no semicolon at the end')
    """

    statements = split_sql_script(script)

    assert len(statements) == 4
    assert statements[0].endswith("DEFAULT ';');")
    assert statements[1] == 'CREATE TABLE "b;c" (y INT);'
    assert statements[2].startswith("CREATE TRIGGER")
    assert statements[2].endswith("END;")
    assert "no semicolon at the end" in statements[3]
    connection = sqlite3.connect(":memory:")
    for statement in statements:
        connection.execute(statement)
    assert connection.execute('SELECT count(*) FROM "b;c"').fetchone() == (2,)


def test_sqlite_errors_are_translated_by_kind() -> None:
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    connection.execute("INSERT INTO t VALUES (1, 'secret')")
    with pytest.raises(sqlite3.IntegrityError) as duplicate:
        connection.execute("INSERT INTO t VALUES (1, 'secret')")
    with pytest.raises(sqlite3.OperationalError) as missing:
        connection.execute("SELECT * FROM nowhere")

    rejected = translate_error(duplicate.value)
    assert isinstance(rejected, RowRejected)
    assert "t.id" in rejected.reason
    assert "secret" not in rejected.reason
    refused = translate_error(missing.value)
    assert isinstance(refused, PermanentError)
    assert not isinstance(refused, RowRejected)


def test_connection_refused_and_timeouts_are_transient() -> None:
    assert isinstance(translate_error(ConnectionRefusedError(111, "refused")), TransientError)
    assert isinstance(translate_error(TimeoutError()), TransientError)


@pytest.mark.postgres
def test_a_real_deadlock_is_transient(postgres_url: str, pg_schema: str) -> None:
    import asyncpg

    table = f"{pg_schema}.accounts"
    asyncio.run(
        pg_execute(
            postgres_url,
            f"CREATE TABLE {table} (id int PRIMARY KEY, n int);"
            f" INSERT INTO {table} VALUES (1, 0), (2, 0)",
        )
    )

    async def deadlock() -> list[BaseException]:
        first = await asyncpg.connect(postgres_url)
        second = await asyncpg.connect(postgres_url)
        try:
            for connection, row in ((first, 1), (second, 2)):
                await connection.execute("BEGIN")
                await connection.execute(f"UPDATE {table} SET n = n + 1 WHERE id = {row}")
            outcomes = await asyncio.gather(
                first.execute(f"UPDATE {table} SET n = n + 1 WHERE id = 2"),
                second.execute(f"UPDATE {table} SET n = n + 1 WHERE id = 1"),
                return_exceptions=True,
            )
            return [o for o in outcomes if isinstance(o, BaseException)]
        finally:
            await first.close()
            await second.close()

    errors = asyncio.run(deadlock())

    assert len(errors) == 1
    translated = translate_error(errors[0])
    assert isinstance(translated, TransientError)
    assert translated.reason == "deadlock detected"
