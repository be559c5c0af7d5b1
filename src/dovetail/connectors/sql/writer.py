"""Writing rows into one table through SQLAlchemy: bulk in one transaction, or row by row.

``TableWriter.write_all`` writes a list of rows in one transaction: on PostgreSQL through
``COPY`` (see ``copy.py``) unless disabled, otherwise as one multi-row ``INSERT`` (for upserts
``ON CONFLICT (key) DO UPDATE`` on PostgreSQL, ``ON DUPLICATE KEY UPDATE`` on MariaDB/MySQL) per
set of columns. ``write_each`` writes the same rows in one
transaction with a savepoint per row, so rows the database rejects are reported one by one while
the others land. Both raise our translated errors (``engine.translate_error``). SQLite has its
own writer on a dedicated thread (``sqlite.py``) with the same two methods.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

from sqlalchemy import Insert, Table, UniqueConstraint
from sqlalchemy import types as sqltypes
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dovetail.connectors.sql.copy import copy_rows, to_records
from dovetail.connectors.sql.engine import RowRejected, driver_connection, translate_error
from dovetail.errors import MessageError, PermanentError, TransientError

Mode = Literal["insert", "upsert"]
Row = dict[str, Any]
_MAX_SHAPES = 256


def _postgresql_upsert(table: Table, columns: Sequence[str], key: Sequence[str]) -> Insert:
    from sqlalchemy.dialects.postgresql import insert

    statement = insert(table)
    updates = {name: statement.excluded[name] for name in columns if name not in key}
    if updates:
        return statement.on_conflict_do_update(index_elements=list(key), set_=updates)
    return statement.on_conflict_do_nothing(index_elements=list(key))


def _mysql_upsert(table: Table, columns: Sequence[str], key: Sequence[str]) -> Insert:
    from dovetail.connectors.sql.mysql import upsert_statement

    return upsert_statement(table, columns, key)


_UPSERTS: dict[str, Callable[[Table, Sequence[str], Sequence[str]], Insert]] = {
    "postgresql": _postgresql_upsert,
    "mysql": _mysql_upsert,
}
"""Per dialect: the upsert of some columns on a key (``ON CONFLICT``, ``ON DUPLICATE KEY``)."""


class RowWriter(Protocol):
    """What the sink needs from a writer, whatever the database."""

    async def write_all(self, rows: Sequence[Row]) -> None:
        """All rows in one transaction; ``RowRejected`` when a row's data is refused."""
        ...

    async def write_each(self, rows: Sequence[Row]) -> list[MessageError | None]:
        """Each row in its own savepoint of one transaction; per row ``None`` or its error."""
        ...


def unique_column_sets(table: Table) -> list[frozenset[str]]:
    """The column sets the table keeps unique: primary key, unique constraints, unique indexes."""
    found: list[frozenset[str]] = []
    if table.primary_key.columns:
        found.append(frozenset(column.name for column in table.primary_key.columns))
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint) and constraint.columns:
            found.append(frozenset(column.name for column in constraint.columns))
    for index in table.indexes:
        names = [getattr(expression, "name", None) for expression in index.expressions]
        if index.unique and names and all(isinstance(name, str) for name in names):
            found.append(frozenset(str(name) for name in names))
    return found


def check_upsert_key(table: Table, mode: Mode, key: Sequence[str]) -> None:
    """Raise ``PermanentError`` when an upsert ``key`` is not a unique column set of ``table``."""
    if mode == "upsert" and frozenset(key) not in unique_column_sets(table):
        raise PermanentError(
            f"upsert key ({', '.join(key)}) of table {table.name} is not its primary key"
            " or a unique constraint; ON CONFLICT needs one"
        )


def group_rows(rows: Sequence[Row], key: Sequence[str]) -> dict[tuple[str, ...], list[Row]]:
    """Rows grouped by their set of columns (one statement each), each group sorted by ``key``
    when one is given, so that concurrent writers lock rows in the same order."""
    groups: dict[tuple[str, ...], list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    if key:
        pick = operator.itemgetter(*key)
        for group in groups.values():
            with contextlib.suppress(TypeError):  # mixed key types: keep arrival order
                group.sort(key=pick)
    return groups


class TableWriter:
    """Writes rows into ``table``; one instance per sink, safe for concurrent ``write_*`` calls."""

    def __init__(
        self,
        engine: AsyncEngine,
        table: Table,
        *,
        mode: Mode,
        key: Sequence[str],
        use_copy: bool,
    ) -> None:
        dialect = engine.dialect.name
        if dialect not in _UPSERTS:
            raise PermanentError(f"the sql sink does not support {dialect} yet")
        check_upsert_key(table, mode, key)
        self._engine = engine
        self._table = table
        self._mode = mode
        self._key = tuple(key) if mode == "upsert" else ()
        self._copy = use_copy and dialect == "postgresql"
        self._upsert = _UPSERTS[dialect]
        self._statements: dict[tuple[str, ...], Insert] = {}
        self._json_columns = frozenset(
            column.name for column in table.columns if isinstance(column.type, sqltypes.JSON)
        )
        self._quote: Callable[[str], str] = engine.dialect.identifier_preparer.quote

    async def write_all(self, rows: Sequence[Row]) -> None:
        """Write every row in one transaction. Raises ``RowRejected`` when some row's data is
        refused (nothing is written), ``TransientError`` or ``PermanentError`` otherwise."""
        groups = group_rows(rows, self._key)
        try:
            if self._copy:
                await self._copy_all(groups)
                return
            async with self._engine.begin() as connection:
                for columns, group in groups.items():
                    await self._execute(connection, columns, group)
        except MessageError:
            raise
        except Exception as exc:
            raise translate_error(exc) from exc

    async def write_each(self, rows: Sequence[Row]) -> list[MessageError | None]:
        """Write the rows in order in one transaction, each in its own savepoint.

        Returns, per row, ``None`` or the ``RowRejected`` that refused it; the others are
        committed. Raises when the whole transaction fails (connection lost, deadlock...).
        """
        rejected: dict[int, MessageError] = {}
        try:
            async with self._engine.begin() as connection:
                for position, row in enumerate(rows):
                    try:
                        async with connection.begin_nested():
                            await self._execute(connection, tuple(row), [row])
                    except Exception as exc:
                        error = translate_error(exc)
                        if not isinstance(error, RowRejected):
                            raise error from exc
                        rejected[position] = error
        except MessageError:
            raise
        except Exception as exc:
            raise translate_error(exc) from exc
        return [rejected.get(position) for position in range(len(rows))]

    async def _execute(
        self, connection: AsyncConnection, columns: tuple[str, ...], rows: list[Row]
    ) -> None:
        """One multi-row statement for rows that all have ``columns``."""
        await connection.execute(self._statement(columns), rows)

    def _statement(self, columns: tuple[str, ...]) -> Insert:
        statement = self._statements.get(columns)
        if statement is None:
            statement = self._build_statement(columns)
            if len(self._statements) < _MAX_SHAPES:
                self._statements[columns] = statement
        return statement

    def _build_statement(self, columns: tuple[str, ...]) -> Insert:
        if self._mode == "insert":
            return self._table.insert()
        return self._upsert(self._table, columns, self._key)

    async def _copy_all(self, groups: dict[tuple[str, ...], list[Row]]) -> None:
        async with self._engine.connect() as connection:
            driver = await driver_connection(connection)
            try:
                async with driver.transaction():
                    for columns, group in groups.items():
                        await copy_rows(
                            driver,
                            schema=self._table.schema,
                            table=self._table.name,
                            columns=columns,
                            records=to_records(group, columns, self._json_columns),
                            key=self._key,
                            quote=self._quote,
                        )
            except Exception as exc:
                error = translate_error(exc)
                if isinstance(error, TransientError):
                    await connection.invalidate()
                raise error from exc
