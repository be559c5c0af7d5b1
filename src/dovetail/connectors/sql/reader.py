"""Running the ``sql`` source's queries: one call returns the column names and the rows.

PostgreSQL and MariaDB/MySQL go through SQLAlchemy's asyncio engine (``text()``, named binds);
each read is one short transaction on a pooled connection, so every poll sees the rows
committed before it. SQLite is read on its own thread (``sqlite.SqliteDatabase``) in autocommit
mode: a read never takes the write lock. Failures are translated by ``engine.translate_error``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dovetail.connectors.sql.engine import create_engine, resolve_url, translate_error
from dovetail.connectors.sql.sqlite import SqliteDatabase
from dovetail.connectors.sql.watermark import Quote
from dovetail.errors import MessageError

_MYSQL_JSON = 245
"""The type code MySQL gives a ``JSON`` column (MariaDB keeps JSON as text)."""


class Fetched(Protocol):
    """What a read returned."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    json_columns: frozenset[int]


class _Result:
    __slots__ = ("columns", "json_columns", "rows")

    def __init__(
        self, columns: list[str], rows: list[tuple[Any, ...]], json_columns: frozenset[int]
    ) -> None:
        self.columns = columns
        self.rows = rows
        self.json_columns = json_columns


class QueryRunner(Protocol):
    """Runs a read on one database."""

    quote: Quote

    def escape(self, sql: str) -> str:
        """``sql`` (the user's query) with what the runner would take for bind markers
        escaped."""
        ...

    async def fetch(self, sql: str, params: dict[str, Any]) -> Fetched:
        """Column names and rows of ``sql``; raises our translated errors."""
        ...

    async def close(self) -> None:
        """Release the connections."""
        ...


def open_runner(url: str, project_dir: Path, *, timeout: float) -> QueryRunner:
    """The runner for ``url`` (nothing is connected until the first read)."""
    resolved = resolve_url(url, project_dir)
    if resolved.get_backend_name() == "sqlite":
        return SqliteRunner(SqliteDatabase(resolved, timeout=timeout))
    return EngineRunner(create_engine(resolved, pool_size=1, timeout=timeout))


class EngineRunner:
    """Reads through a SQLAlchemy engine (PostgreSQL, MariaDB/MySQL)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._mysql = engine.dialect.name == "mysql"
        self.quote: Quote = engine.dialect.identifier_preparer.quote

    @staticmethod
    def escape(sql: str) -> str:
        """Colons in user SQL are text, not bind markers (``'{"a":1}'``, ``x::int``)."""
        return sql.replace(":", "\\:")

    async def fetch(self, sql: str, params: dict[str, Any]) -> Fetched:
        """Run ``sql`` in a short read transaction."""
        try:
            async with self._engine.connect() as connection:
                result = await connection.execute(text(sql), params)
                columns = list(result.keys())
                json_columns: frozenset[int] = frozenset()
                if self._mysql and result.cursor is not None:
                    description = result.cursor.description or ()
                    json_columns = frozenset(
                        index for index, item in enumerate(description) if item[1] == _MYSQL_JSON
                    )
                rows = [tuple(row) for row in result.fetchall()]
        except MessageError:
            raise
        except Exception as exc:
            raise translate_error(exc) from exc
        return _Result(columns, rows, json_columns)

    async def close(self) -> None:
        """Close the pool."""
        await self._engine.dispose()


class SqliteRunner:
    """Reads SQLite on the database's own thread, outside any write transaction."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._database = database
        self.quote: Quote = database.dialect.identifier_preparer.quote

    @staticmethod
    def escape(sql: str) -> str:
        """SQLite's own parser tells bind markers from text: nothing to do."""
        return sql

    async def fetch(self, sql: str, params: dict[str, Any]) -> Fetched:
        """Run ``sql`` as one autocommit read."""

        def read(connection: Any) -> _Result:
            cursor = connection.execute(sql, params)
            try:
                columns = [item[0] for item in cursor.description or ()]
                return _Result(columns, cursor.fetchall(), frozenset())
            finally:
                cursor.close()

        return await self._database.run(read)

    async def close(self) -> None:
        """Stop the database's thread."""
        await self._database.close()
