"""SQLite for the ``sql`` sink: one dedicated thread owning a stdlib ``sqlite3`` connection.

Every database operation of the sink is one call into that thread (``SqliteThread``): running
``init_sql``, inspecting the table, and writing a batch from ``BEGIN IMMEDIATE`` to ``COMMIT``
(or, to isolate bad rows, the same with a savepoint per row). Rows are bound straight to the
driver in the layout SQLAlchemy's SQLite dialect uses (dates and times as ISO text, decimals as
floats), so tables written before and after read the same. Failures are translated by
``engine.translate_error`` at this boundary.

One connection serves all of the sink's batches, one after another: SQLite has one writer at a
time anyway, and a per-connection ``PRAGMA`` in ``init_sql`` applies to every write.
"""

from __future__ import annotations

import operator
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Insert, MetaData, Table, create_engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from dovetail.connectors.sql.engine import (
    RowRejected,
    is_memory,
    split_sql_script,
    translate_error,
)
from dovetail.connectors.sql.writer import Mode, Row, check_upsert_key, group_rows
from dovetail.errors import MessageError, PermanentError
from dovetail.store.sqlite_thread import (
    Operation,
    SqliteThread,
    T,
    in_transaction,
    insert_rows,
)

_Prepared = tuple[str, Callable[[Row], tuple[Any, ...]]]
"""SQL text and the picker of its parameter values from a row."""
_MAX_SHAPES = 256


class SqliteDatabase:
    """The SQLite database of one sink, opened on its own thread by ``connect``."""

    name = "sqlite"

    def __init__(self, url: URL, *, timeout: float) -> None:
        self.dialect = SQLiteDialect_pysqlite()
        self._url = url
        self._timeout = timeout
        self._thread = SqliteThread("dovetail-sql-sink")

    async def connect(self) -> None:
        """Open the connection (creating the file's folder); raises our translated errors."""
        if self._thread.running:
            return
        args, options = self.dialect.create_connect_args(self._url)
        options = {**options, "timeout": self._timeout, "isolation_level": None}
        options.pop("check_same_thread", None)  # the connection stays on its thread
        database = str(args[0])
        open_database: Callable[..., sqlite3.Connection] = sqlite3.connect

        def connect() -> sqlite3.Connection:
            if not is_memory(self._url) and not options.get("uri"):
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            return open_database(database, **options)

        try:
            await self._thread.start(connect)
        except Exception as exc:
            raise translate_error(exc) from exc

    async def close(self) -> None:
        """Close the connection after the operations under way."""
        await self._thread.stop()

    async def run(self, operation: Operation[T]) -> T:
        """``operation(connection)`` on the thread; raises our translated errors."""
        await self.connect()
        try:
            return await self._thread.run(operation)
        except MessageError:
            raise
        except Exception as exc:
            raise translate_error(exc) from exc

    async def run_script(self, script: str) -> None:
        """Run a DDL script (``init_sql``) statement by statement, outside a transaction so
        that ``PRAGMA journal_mode`` works too."""
        statements = split_sql_script(script)

        def run(connection: sqlite3.Connection) -> None:
            for statement in statements:
                connection.execute(statement).close()

        await self.run(run)

    async def reflect_table(self, name: str, schema: str | None) -> Table:
        """The table as the database describes it; ``PermanentError`` when it does not exist."""

        def reflect(connection: sqlite3.Connection) -> Table:
            engine = create_engine(
                "sqlite://", creator=lambda: _Borrowed(connection), poolclass=NullPool
            )
            try:
                with engine.connect() as borrowed:
                    return Table(name, MetaData(), schema=schema, autoload_with=borrowed)
            except sa_exc.NoSuchTableError:
                where = f"{schema}.{name}" if schema else name
                raise PermanentError(
                    f"table {where} does not exist; create it or add init_sql"
                ) from None

        return await self.run(reflect)

    def writer(self, table: Table, *, mode: Mode, key: Sequence[str]) -> SqliteTableWriter:
        """A writer of rows into ``table`` on this database."""
        return SqliteTableWriter(self, table, mode=mode, key=key)


class SqliteTableWriter:
    """Writes rows into one table, each call one transaction on the database's thread.

    Rows hold driver values already (``RowBuilder`` with this database's ``bind_dialect``).
    """

    def __init__(
        self, database: SqliteDatabase, table: Table, *, mode: Mode, key: Sequence[str]
    ) -> None:
        check_upsert_key(table, mode, key)
        self._database = database
        self._table = table
        self._mode = mode
        self._key = tuple(key) if mode == "upsert" else ()
        self._prepared: dict[tuple[str, ...], _Prepared] = {}

    async def write_all(self, rows: Sequence[Row]) -> None:
        """Write every row in one transaction. Raises ``RowRejected`` when some row's data is
        refused (nothing is written), ``TransientError`` or ``PermanentError`` otherwise."""
        groups = group_rows(rows, self._key)
        work = [self._bind(columns, group) for columns, group in groups.items()]

        def write(connection: sqlite3.Connection) -> None:
            for sql, parameters in work:
                insert_rows(connection, sql, parameters)

        await self._database.run(lambda connection: in_transaction(connection, write))

    async def write_each(self, rows: Sequence[Row]) -> list[MessageError | None]:
        """Write the rows in order in one transaction, isolating the rows the database refuses.

        Returns, per row, ``None`` or the ``RowRejected`` that refused it; the others are
        committed. Raises when the whole transaction fails (connection lost, locked...).

        The outcome is that of one savepoint per row, applied in order; runs of rows go in
        together under one savepoint, and a run that is refused is halved until the refused
        rows stand alone, so a batch with few bad rows takes few statements.
        """
        runs: list[tuple[int, str, list[tuple[Any, ...]]]] = []
        start = 0
        while start < len(rows):
            shape = tuple(rows[start])
            end = start + 1
            while end < len(rows) and tuple(rows[end]) == shape:
                end += 1
            sql, parameters = self._bind(shape, rows[start:end])
            runs.append((start, sql, parameters))
            start = end

        def write(connection: sqlite3.Connection) -> list[MessageError | None]:
            outcomes: list[MessageError | None] = [None] * len(rows)
            for first, sql, parameters in runs:
                _isolate(connection, sql, parameters, first, outcomes)
            return outcomes

        return await self._database.run(lambda connection: in_transaction(connection, write))

    def _bind(
        self, columns: tuple[str, ...], rows: Sequence[Row]
    ) -> tuple[str, list[tuple[Any, ...]]]:
        """The statement for ``columns`` and each row's parameters."""
        prepared = self._prepared.get(columns)
        if prepared is None:
            prepared = self._prepare(columns)
        sql, pick = prepared
        return sql, list(map(pick, rows))

    def _prepare(self, columns: tuple[str, ...]) -> _Prepared:
        dialect = self._database.dialect
        compiled = self._statement(columns).compile(dialect=dialect, column_keys=list(columns))
        names = list(compiled.positiontup or ())
        single = operator.itemgetter(*names)
        pick = single if len(names) > 1 else lambda row: (single(row),)
        prepared = (str(compiled), pick)
        if len(self._prepared) < _MAX_SHAPES:
            self._prepared[columns] = prepared
        return prepared

    def _statement(self, columns: tuple[str, ...]) -> Insert:
        if self._mode == "insert":
            return self._table.insert()
        insert = sqlite_insert(self._table)
        updates = {name: insert.excluded[name] for name in columns if name not in self._key}
        if updates:
            return insert.on_conflict_do_update(index_elements=list(self._key), set_=updates)
        return insert.on_conflict_do_nothing(index_elements=list(self._key))


def _isolate(
    connection: sqlite3.Connection,
    sql: str,
    parameters: list[tuple[Any, ...]],
    first: int,
    outcomes: list[MessageError | None],
) -> None:
    """Insert ``parameters`` (rows ``first``... of the batch) under a savepoint; when a row is
    refused, undo them and try each half, down to single rows, whose refusals are recorded."""
    connection.execute("SAVEPOINT dovetail_rows")
    try:
        insert_rows(connection, sql, parameters)
    except Exception as exc:  # also a value the driver cannot bind (OverflowError)
        connection.execute("ROLLBACK TO dovetail_rows")
        connection.execute("RELEASE dovetail_rows")
        error = translate_error(exc)
        if not isinstance(error, RowRejected):
            raise
        if len(parameters) == 1:
            outcomes[first] = error
            return
        middle = len(parameters) // 2
        _isolate(connection, sql, parameters[:middle], first, outcomes)
        _isolate(connection, sql, parameters[middle:], first + middle, outcomes)
    else:
        connection.execute("RELEASE dovetail_rows")


class _Borrowed:
    """The thread's connection lent to SQLAlchemy for reflection; closing it is a no-op."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    def close(self) -> None:
        """Keep the connection open: it belongs to the thread."""
