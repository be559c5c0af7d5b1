"""Database access for the SQL connectors: URLs, engines, dialects and error translation.

A flow names a database by a plain URL (``sqlite:///data/orders.db``, ``postgresql://user@host/db``,
``mariadb://user@host/db``); ``resolve_url`` maps it to the asyncio driver SQLAlchemy needs and
anchors a relative SQLite path at the project directory. ``create_engine`` builds the engine with
the settings every connector wants (bounded pool, timeouts, real transactions and savepoints on
SQLite).

``translate_error`` is the connector boundary for failures: every SQLAlchemy or driver exception
becomes a ``TransientError`` (connection lost, timeout, deadlock, serialization failure, locked
database) or a ``PermanentError``; ``RowRejected`` marks the permanent failures caused by one
row's data (constraint or type violations), which the sink isolates by retrying row by row.
Reasons name the constraint, column or SQLSTATE (MariaDB/MySQL: error number, see
``mysql.translate_mysql``), never a row value.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, MetaData, Table, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from dovetail.connectors.sql.mysql import mysql_error_code, translate_mysql
from dovetail.errors import MessageError, MissingExtraError, PermanentError, TransientError

ASYNC_DRIVERS: dict[str, str] = {
    "sqlite": "aiosqlite",
    "postgresql": "asyncpg",
    "mysql": "aiomysql",
}
"""The asyncio driver used for each supported backend (``mysql`` also serves MariaDB)."""

_BACKEND_ALIASES = {"postgres": "postgresql", "mariadb": "mysql"}
_EXTRAS = {"asyncpg": "postgresql", "aiomysql": "mysql"}


class RowRejected(PermanentError):
    """The database refused one row's data: a constraint, a type or a value out of range."""


def backend_of(url: str) -> str:
    """The backend named by a URL's scheme (``postgresql``, ``sqlite``, ``mysql``), aliases
    resolved (``postgres``, and ``mariadb`` which is served by the ``mysql`` backend).

    Raises ``ValueError`` for an unparseable URL or a backend this connector does not support.
    """
    scheme = url.split("://", 1)[0] if "://" in url else ""
    backend, _, driver = scheme.partition("+")
    backend = _BACKEND_ALIASES.get(backend, backend)
    if backend not in ASYNC_DRIVERS:
        known = ", ".join(f"{name}://" for name in sorted(ASYNC_DRIVERS))
        raise ValueError(f"unsupported database URL scheme {scheme!r}; expected one of {known}")
    if driver and driver != ASYNC_DRIVERS[backend]:
        raise ValueError(
            f"driver {driver!r} is not supported for {backend}; write {backend}:// and"
            f" Dovetail uses {ASYNC_DRIVERS[backend]}"
        )
    return backend


def resolve_url(url: str, project_dir: Path) -> URL:
    """``url`` with its asyncio driver; a relative SQLite path is resolved in ``project_dir``;
    MariaDB/MySQL talk ``utf8mb4`` unless the URL names a ``charset``."""
    backend = backend_of(url)
    parsed = make_url(url)
    parsed = parsed.set(drivername=f"{backend}+{ASYNC_DRIVERS[backend]}")
    if backend == "mysql" and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    if backend == "sqlite" and not is_memory(parsed):
        path = Path(parsed.database or "")
        if not path.is_absolute():
            parsed = parsed.set(database=str(project_dir / path))
    return parsed


def is_memory(url: URL) -> bool:
    """True for an in-memory SQLite database (``sqlite://`` or ``sqlite:///:memory:``)."""
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def create_engine(url: URL, *, pool_size: int, timeout: float) -> AsyncEngine:
    """An async engine for ``url`` with a bounded pool; waits longer than ``timeout`` fail.

    Statement parameters (row values) are kept out of SQLAlchemy's logs and error texts.

    SQLite gets real transactions (``BEGIN IMMEDIATE`` emitted by us, so savepoints and DDL are
    transactional and a writer takes the lock up front) and ``timeout`` as its busy timeout.
    PostgreSQL gets connect and command timeouts and a pre-ping on checkout; MariaDB/MySQL a
    connect timeout, a pre-ping and the session settings of ``mysql.connect_args``.
    Raises ``MissingExtraError`` when the backend's driver is not installed.
    """
    driver = url.get_driver_name()
    if driver in _EXTRAS and driver not in sys.modules:
        try:
            __import__(driver)
        except ImportError:
            extra = _EXTRAS[driver]
            raise MissingExtraError(
                f"{url.get_backend_name()} needs {driver}: pip install 'dovetail[{extra}]'"
            ) from None
    if url.get_backend_name() == "sqlite":
        _quiet_aiosqlite()
        if is_memory(url):
            engine = create_async_engine(
                url, hide_parameters=True, connect_args={"timeout": timeout}
            )
        else:
            Path(url.database or "").parent.mkdir(parents=True, exist_ok=True)
            engine = create_async_engine(
                url,
                hide_parameters=True,
                pool_size=pool_size,
                max_overflow=0,
                pool_timeout=timeout,
                connect_args={"timeout": timeout},
            )
        event.listen(engine.sync_engine, "connect", _sqlite_take_over_transactions)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    if url.get_backend_name() == "mysql":
        from dovetail.connectors.sql.mysql import connect_args

        return create_async_engine(
            url,
            hide_parameters=True,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=timeout,
            pool_pre_ping=True,
            pool_recycle=3600,
            connect_args=connect_args(timeout),
        )
    return create_async_engine(
        url,
        hide_parameters=True,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=timeout,
        pool_pre_ping=True,
        connect_args={"timeout": timeout, "command_timeout": timeout},
    )


def _quiet_aiosqlite() -> None:
    # aiosqlite logs every call with its parameters (row values) at DEBUG; never let it.
    logger = logging.getLogger("aiosqlite")
    if logger.level < logging.INFO:
        logger.setLevel(logging.INFO)


def _sqlite_take_over_transactions(dbapi_connection: Any, _record: Any) -> None:
    # sqlite3's legacy mode skips BEGIN before DDL and SAVEPOINT; we emit BEGIN ourselves.
    dbapi_connection.isolation_level = None


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


async def driver_connection(connection: AsyncConnection) -> Any:
    """The driver's own connection (``asyncpg.Connection``, ``aiosqlite.Connection``) under
    ``connection``, for what SQLAlchemy does not expose (COPY, multi-statement scripts)."""
    driver = (await connection.get_raw_connection()).driver_connection
    if driver is None:
        raise TransientError("database connection closed")
    return driver


async def run_script(engine: AsyncEngine, script: str) -> None:
    """Run a DDL script (``init_sql``) statement by statement; raises our translated errors.

    PostgreSQL runs the whole script in one round trip (its own parser handles ``$$`` bodies;
    the statements commit together); SQLite runs each statement as it is split by
    ``split_sql_script``, outside a transaction so that ``PRAGMA journal_mode`` works too;
    MariaDB/MySQL run the same statements, then commit (no ``DELIMITER`` lines).
    """
    try:
        async with engine.connect() as connection:
            driver = await driver_connection(connection)
            if engine.dialect.name == "postgresql":
                await driver.execute(script)
                return
            if engine.dialect.name == "mysql":
                async with driver.cursor() as cursor:
                    for statement in split_sql_script(script):
                        await cursor.execute(statement)
                await driver.commit()
                return
            for statement in split_sql_script(script):
                cursor = await driver.execute(statement)
                await cursor.close()
    except Exception as exc:
        raise translate_error(exc) from exc


async def reflect_table(engine: AsyncEngine, name: str, schema: str | None) -> Table:
    """The table's columns, keys, constraints and indexes as the database describes them.

    Raises ``PermanentError`` when the table does not exist, ``TransientError`` when the
    database cannot be reached.
    """

    def load(connection: Connection) -> Table:
        return Table(name, MetaData(), schema=schema, autoload_with=connection)

    try:
        async with engine.connect() as connection:
            return await connection.run_sync(load)
    except sa_exc.NoSuchTableError:
        where = f"{schema}.{name}" if schema else name
        raise PermanentError(f"table {where} does not exist; create it or add init_sql") from None
    except Exception as exc:
        raise translate_error(exc) from exc


def split_sql_script(script: str) -> list[str]:
    """Split a script into statements at the ``;`` that end them.

    Uses SQLite's own tokenizer (``sqlite3.complete_statement``), so semicolons inside string
    literals, quoted identifiers, comments and ``CREATE TRIGGER ... BEGIN ... END`` bodies do not
    split. Empty statements and trailing comments are dropped.
    """
    statements: list[str] = []
    current: list[str] = []
    for piece in script.split(";"):
        current.append(piece)
        candidate = ";".join(current) + ";"
        if sqlite3.complete_statement(candidate):
            statements.append(candidate)
            current = []
    rest = ";".join(current)
    if rest.strip():
        statements.append(rest)
    return [s.strip() for s in statements if _has_code(s)]


def _has_code(statement: str) -> bool:
    lines = [line.split("--", 1)[0] for line in statement.splitlines()]
    return bool("".join(lines).replace(";", "").strip())


# --- error translation -------------------------------------------------------------------------

_PG_TRANSIENT_CLASSES = ("08", "53", "58")
_PG_TRANSIENT_STATES = {
    "40001": "serialization failure",
    "40P01": "deadlock detected",
    "55P03": "lock not available",
    "57014": "statement cancelled or timed out",
    "57P01": "database server shutting down",
    "57P02": "database server crashed",
    "57P03": "database server not accepting connections yet",
}
_PG_DATA_STATES = {
    "22001": "value too long for the column's type",
    "22003": "numeric value out of range",
    "22007": "invalid date/time format",
    "22008": "date/time value out of range",
    "22012": "division by zero",
    "22021": "text not valid in the database encoding (NUL byte?)",
    "22P02": "invalid input syntax for the column's type",
    "22P05": "text not valid in the database encoding",
}
_SQLITE_TRANSIENT = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_FULL", "SQLITE_IOERR")


def translate_error(error: BaseException) -> MessageError:
    """Our error for a SQLAlchemy or driver exception: transient, ``RowRejected`` or permanent.

    Messages already translated pass through unchanged.
    """
    if isinstance(error, MessageError):
        return error
    chain = list(_causes(error))
    # The driver's own exception comes last in the chain and carries the constraint/column names.
    for item in reversed(chain):
        code = mysql_error_code(item)
        if code is not None:
            return translate_mysql(code, item)
        state = getattr(item, "sqlstate", None)
        if isinstance(state, str) and state:
            return _translate_postgres(state, item)
    for item in chain:
        if isinstance(item, sqlite3.Error):
            return _translate_sqlite(item)
    for item in chain:
        if isinstance(item, TimeoutError | sa_exc.TimeoutError):
            return TransientError("database operation timed out", detail=type(item).__name__)
        if isinstance(item, OSError):
            return TransientError(
                f"cannot reach the database ({type(item).__name__})", detail=str(item)
            )
        if isinstance(item, sa_exc.DBAPIError) and item.connection_invalidated:
            return TransientError("database connection lost", detail=type(item).__name__)
        if _is_asyncpg_interface_error(item):
            return TransientError("database connection unusable", detail=type(item).__name__)
    for item in chain:
        if isinstance(item, sa_exc.StatementError) and not isinstance(item, sa_exc.DBAPIError):
            cause = item.orig if item.orig is not None else item
            return _wrong_type(cause)
        if isinstance(item, TypeError | ValueError | OverflowError):
            return _wrong_type(item)
    return PermanentError(f"database error ({type(error).__name__})")


def _wrong_type(error: BaseException) -> RowRejected:
    return RowRejected(f"a value has the wrong type for its column ({type(error).__name__})")


def is_row_rejection(error: BaseException) -> bool:
    """True when ``error`` (already translated) blames the data of a row, not the database."""
    return isinstance(error, RowRejected)


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        item = pending.pop(0)
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        orig = getattr(item, "orig", None)
        pending.append(orig if isinstance(orig, BaseException) else None)
        pending.append(item.__cause__)


def _translate_postgres(state: str, error: BaseException) -> MessageError:
    detail = f"SQLSTATE {state}"
    if state in _PG_TRANSIENT_STATES:
        return TransientError(_PG_TRANSIENT_STATES[state], detail=detail)
    if state.startswith(_PG_TRANSIENT_CLASSES):
        return TransientError(f"database unavailable (SQLSTATE {state})", detail=detail)
    constraint = getattr(error, "constraint_name", None)
    column = getattr(error, "column_name", None)
    if state.startswith("23"):
        reason = {
            "23502": f"column {column!r} must not be null",
            "23503": f"foreign key constraint {constraint!r} violated",
            "23505": f"unique constraint {constraint!r} violated",
            "23514": f"check constraint {constraint!r} violated",
            "23P01": f"exclusion constraint {constraint!r} violated",
        }.get(state, f"integrity constraint violated (SQLSTATE {state})")
        return RowRejected(reason, detail=detail)
    if state.startswith("22"):
        what = _PG_DATA_STATES.get(state, "invalid value")
        where = f" in column {column!r}" if column else ""
        return RowRejected(f"{what}{where} (SQLSTATE {state})", detail=detail)
    if state == "P0001":  # RAISE EXCEPTION in a trigger: its text may quote the row, so omit it
        return RowRejected("rejected by a trigger or function (SQLSTATE P0001)", detail=detail)
    # Other classes (42 syntax or undefined object, 28 authorization, 3D unknown database) are
    # configuration problems: the server's primary message names the object, never a row value.
    message = getattr(error, "message", None) or type(error).__name__
    return PermanentError(f"database error (SQLSTATE {state}): {message}", detail=detail)


def _translate_sqlite(error: sqlite3.Error) -> MessageError:
    name = getattr(error, "sqlite_errorname", "") or ""
    message = str(error)
    if name.startswith(_SQLITE_TRANSIENT) or "database is locked" in message:
        return TransientError(f"SQLite: {message}", detail=name or None)
    if isinstance(error, sqlite3.IntegrityError | sqlite3.DataError):
        return RowRejected(f"SQLite: {message}", detail=name or None)
    if isinstance(error, sqlite3.ProgrammingError | sqlite3.InterfaceError) and (
        "binding parameter" in message
    ):
        return RowRejected(f"SQLite: {message}", detail=name or None)
    return PermanentError(f"SQLite: {message}", detail=name or None)


def _is_asyncpg_interface_error(error: BaseException) -> bool:
    asyncpg = sys.modules.get("asyncpg")
    if asyncpg is None:
        return False
    interface_error: type[BaseException] = asyncpg.exceptions.InterfaceError
    client_data_error: type[BaseException] = asyncpg.exceptions._base.DataError
    return isinstance(error, interface_error) and not isinstance(error, client_data_error)
