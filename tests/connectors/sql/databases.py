"""The three databases the SQL connectors are tested on, behind one small interface.

``Database`` runs setup statements with a plain driver connection (sqlite3, asyncpg, PyMySQL),
knows the column types to use on its backend, and hands out uniquely named tables that it drops
when the test ends. MariaDB is the local service at 127.0.0.1:3306 (root, no password, database
``test``), or the URL in ``DOVETAIL_TEST_MARIADB_URL``.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sql_support import POSTGRES_URL
from tests.conftest import require_service

MARIADB_URL = os.environ.get("DOVETAIL_TEST_MARIADB_URL", "mariadb://root@127.0.0.1:3306/test")
BACKENDS = ("sqlite", "postgresql", "mariadb")


class Database:
    """One test database: a URL for flows, and direct access for setup and checks."""

    def __init__(self, backend: str, url: str, path: Path | None = None) -> None:
        self.backend = backend
        self.url = url
        self._path = path
        self._tables: list[str] = []

    @property
    def timestamp(self) -> str:
        """A timestamp column type without time zone."""
        return {"sqlite": "TEXT", "postgresql": "TIMESTAMP", "mariadb": "DATETIME(6)"}[self.backend]

    def table(self, prefix: str = "t") -> str:
        """A fresh table name, dropped at the end of the test."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self._tables.append(name)
        return name

    def execute(self, *statements: str) -> None:
        """Run statements, committed."""
        if self.backend == "sqlite":
            assert self._path is not None
            with sqlite3.connect(self._path) as connection:
                for statement in statements:
                    connection.execute(statement)
        elif self.backend == "postgresql":
            asyncio.run(_pg(self.url, list(statements), fetch=False))
        else:
            with _mariadb(self.url) as cursor:
                for statement in statements:
                    cursor.execute(statement)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows of a query as tuples."""
        if self.backend == "sqlite":
            assert self._path is not None
            with sqlite3.connect(self._path) as connection:
                return [tuple(row) for row in connection.execute(sql).fetchall()]
        if self.backend == "postgresql":
            return asyncio.run(_pg(self.url, [sql], fetch=True))
        with _mariadb(self.url) as cursor:
            cursor.execute(sql)
            return [tuple(row) for row in cursor.fetchall()]

    def drop_tables(self) -> None:
        for name in reversed(self._tables):
            self.execute(f"DROP TABLE IF EXISTS {name}")


async def _pg(url: str, statements: list[str], *, fetch: bool) -> list[tuple[Any, ...]]:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        if fetch:
            return [tuple(record) for record in await connection.fetch(statements[0])]
        for statement in statements:
            await connection.execute(statement)
        return []
    finally:
        await connection.close()


class _mariadb:
    def __init__(self, url: str) -> None:
        import pymysql

        parts = urlsplit(url)
        self._connection = pymysql.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=parts.username or "root",
            password=parts.password or "",
            database=parts.path.lstrip("/") or "test",
            autocommit=True,
        )

    def __enter__(self) -> Any:
        self._cursor = self._connection.cursor()
        return self._cursor

    def __exit__(self, *_: object) -> None:
        self._cursor.close()
        self._connection.close()


def mariadb_connection(url: str = MARIADB_URL) -> Any:
    """A PyMySQL connection (autocommit off) for tests that hold locks."""
    import pymysql

    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        database=parts.path.lstrip("/") or "test",
    )


def require_mariadb() -> str:
    """The MariaDB URL; skips (fails under CI=true) when nothing answers there."""
    parts = urlsplit(MARIADB_URL)
    require_service("MariaDB", parts.hostname or "127.0.0.1", parts.port or 3306)
    return MARIADB_URL


def open_database(backend: str, tmp_path: Path) -> Database:
    """The ``backend`` database for one test (skips when its service is down)."""
    if backend == "sqlite":
        path = tmp_path / "source.db"
        return Database("sqlite", f"sqlite:///{path}", path)
    if backend == "postgresql":
        parts = urlsplit(POSTGRES_URL)
        require_service("PostgreSQL", parts.hostname or "127.0.0.1", parts.port or 5432)
        return Database("postgresql", POSTGRES_URL)
    return Database("mariadb", require_mariadb())


def database_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """Body of a parametrized ``database`` fixture: open, yield, drop the tables."""
    database = open_database(str(request.param), tmp_path)
    try:
        yield database
    finally:
        database.drop_tables()
