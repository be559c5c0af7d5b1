"""Writing rows into one table: bulk in one transaction, or row by row to isolate bad rows.

``TableWriter.write_all`` writes a list of rows in one transaction: on PostgreSQL through
``COPY`` (see ``copy.py``) unless disabled, elsewhere as one multi-row ``INSERT`` (``ON CONFLICT
(key) DO UPDATE`` for upserts) per set of columns. ``write_each`` writes the same rows in one
transaction with a savepoint per row, so rows the database rejects are reported one by one while
the others land. Both raise our translated errors (``engine.translate_error``).
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable, Sequence
from typing import Any, Literal

from sqlalchemy import Insert, Table, UniqueConstraint
from sqlalchemy import types as sqltypes
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dovetail.connectors.sql.copy import copy_rows, to_records
from dovetail.connectors.sql.engine import RowRejected, driver_connection, translate_error
from dovetail.errors import MessageError, PermanentError, TransientError

Mode = Literal["insert", "upsert"]
Row = dict[str, Any]
_Prepared = tuple[
    str, Callable[[Row], tuple[Any, ...]], tuple[tuple[int, Callable[[Any], Any]], ...]
]
"""SQL text, the picker of parameter values from a row, and (position, type processor) pairs."""
_MAX_SHAPES = 256


def _sqlite_insert(table: Table) -> Any:
    from sqlalchemy.dialects.sqlite import insert

    return insert(table)


def _postgresql_insert(table: Table) -> Any:
    from sqlalchemy.dialects.postgresql import insert

    return insert(table)


_INSERTS: dict[str, Callable[[Table], Any]] = {
    "sqlite": _sqlite_insert,
    "postgresql": _postgresql_insert,
}
"""Dialect-specific INSERT constructs that know ``ON CONFLICT`` (MySQL would add its own)."""


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
        if dialect not in _INSERTS:
            raise PermanentError(f"the sql sink does not support {dialect} yet")
        if mode == "upsert":
            wanted = frozenset(key)
            if wanted not in unique_column_sets(table):
                raise PermanentError(
                    f"upsert key ({', '.join(key)}) of table {table.name} is not its primary key"
                    " or a unique constraint; ON CONFLICT needs one"
                )
        self._engine = engine
        self._table = table
        self._mode = mode
        self._key = tuple(key) if mode == "upsert" else ()
        self._copy = use_copy and dialect == "postgresql"
        self._insert = _INSERTS[dialect]
        self._statements: dict[tuple[str, ...], Insert] = {}
        self._prepared: dict[tuple[str, ...], _Prepared] = {}
        self._driver_sql = dialect == "sqlite"
        self._json_columns = frozenset(
            column.name for column in table.columns if isinstance(column.type, sqltypes.JSON)
        )
        self._quote: Callable[[str], str] = engine.dialect.identifier_preparer.quote

    async def write_all(self, rows: Sequence[Row]) -> None:
        """Write every row in one transaction. Raises ``RowRejected`` when some row's data is
        refused (nothing is written), ``TransientError`` or ``PermanentError`` otherwise."""
        groups = self._group(rows)
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

    def _group(self, rows: Sequence[Row]) -> dict[tuple[str, ...], list[Row]]:
        groups: dict[tuple[str, ...], list[Row]] = {}
        for row in rows:
            groups.setdefault(tuple(row), []).append(row)
        if self._key:
            key = operator.itemgetter(*self._key)
            for group in groups.values():
                with contextlib.suppress(TypeError):  # mixed key types: keep arrival order
                    group.sort(key=key)
        return groups

    async def _execute(
        self, connection: AsyncConnection, columns: tuple[str, ...], rows: list[Row]
    ) -> None:
        """One multi-row statement for rows that all have ``columns``."""
        if not self._driver_sql:
            await connection.execute(self._statement(columns), rows)
            return
        # SQLite: the statement SQLAlchemy compiled, run with driver-level parameters; saves
        # SQLAlchemy's per-row parameter handling, applying the same type processors.
        prepared = self._prepared.get(columns)
        if prepared is None:
            prepared = self._prepare(columns)
        sql, pick, processors = prepared
        parameters: list[tuple[Any, ...]] = []
        for row in rows:
            values = list(pick(row))
            for position, process in processors:
                if values[position] is not None:
                    values[position] = process(values[position])
            parameters.append(tuple(values))
        await connection.exec_driver_sql(sql, parameters)

    def _prepare(self, columns: tuple[str, ...]) -> _Prepared:
        dialect = self._engine.dialect
        compiled = self._statement(columns).compile(dialect=dialect, column_keys=list(columns))
        names = list(compiled.positiontup or ())
        processors = []
        for position, name in enumerate(names):
            bind_type = compiled.binds[name].type
            process = bind_type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors.append((position, process))
        single = operator.itemgetter(*names)
        pick = single if len(names) > 1 else lambda row: (single(row),)
        prepared = (str(compiled), pick, tuple(processors))
        if len(self._prepared) < _MAX_SHAPES:
            self._prepared[columns] = prepared
        return prepared

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
        insert = self._insert(self._table)
        updates = {name: insert.excluded[name] for name in columns if name not in self._key}
        statement: Insert
        if updates:
            statement = insert.on_conflict_do_update(index_elements=list(self._key), set_=updates)
        else:
            statement = insert.on_conflict_do_nothing(index_elements=list(self._key))
        return statement

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
