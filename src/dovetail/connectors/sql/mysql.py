"""MariaDB and MySQL for the SQL connectors: session settings, upserts and error translation.

Both speak the same protocol and are reached through ``aiomysql`` (the ``mysql`` extra) under
SQLAlchemy's ``mysql+aiomysql`` dialect; SQLAlchemy tells MariaDB from MySQL by itself.

Every connection starts its session in UTC (``TIMESTAMP`` columns are read and written in
UTC), in strict mode (a value that does not fit its column is an error, never silently
truncated) and with the lock wait bounded by the connector's timeout.

``translate_mysql`` maps the server's error numbers to our errors: lost connections, lock wait
timeouts and deadlocks are transient; constraint and data errors reject one row
(``RowRejected``), named by constraint or column. MySQL error texts quote row values
("Duplicate entry 'x' for key ..."), so reasons are rebuilt from the names only.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Insert, Table

from dovetail.errors import MessageError, PermanentError, TransientError

_TRANSIENT = {
    0: "database connection unusable",
    1040: "too many connections",
    1053: "database server shutting down",
    1152: "connection aborted",
    1158: "network read error",
    1159: "network read timed out",
    1160: "network write error",
    1161: "network write timed out",
    1205: "lock wait timeout exceeded",
    1213: "deadlock detected",
    1317: "statement interrupted",
    1927: "connection killed",
    1969: "statement timed out",
    3024: "statement timed out",
    4031: "connection closed by the server (idle)",
}
_CLIENT_ERRORS = range(2000, 3000)
"""Client-side errors (2002 cannot connect, 2006 server gone away, 2013 lost connection...)."""

_DATA_PROBLEMS = {
    1264: "numeric value out of range",
    1265: "value truncated",
    1292: "invalid date/time or number",
    1365: "division by zero",
    1366: "invalid value for the column's type",
    1367: "invalid value",
    1406: "value too long for the column's type",
    1411: "invalid value",
    3140: "invalid JSON text",
    4038: "invalid JSON text",
}
_SAFE_MESSAGES = frozenset({1044, 1045, 1046, 1049, 1051, 1054, 1142, 1143, 1146, 1109})
"""Errors about configuration whose text names objects only (access denied, unknown table)."""

_COLUMN = re.compile(r"column\s+(\S+)", re.IGNORECASE)
_FIELD = re.compile(r"field\s+'([^']+)'", re.IGNORECASE)
_KEY = re.compile(r"for key\s+'([^']+)'", re.IGNORECASE)
_CONSTRAINT = re.compile(r"constraint\s+[`']([^`']+)[`']", re.IGNORECASE)


def connect_args(timeout: float) -> dict[str, Any]:
    """``aiomysql.connect`` options: connect timeout and the session settings of every
    connection (UTC, strict mode, lock waits bounded by ``timeout``)."""
    seconds = max(1, round(timeout))
    return {
        "connect_timeout": seconds,
        "init_command": (
            "SET SESSION time_zone = '+00:00',"
            f" SESSION innodb_lock_wait_timeout = {seconds},"
            " SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''),"
            " 'STRICT_ALL_TABLES')"
        ),
    }


def upsert_statement(table: Table, columns: Sequence[str], key: Sequence[str]) -> Insert:
    """``INSERT ... ON DUPLICATE KEY UPDATE`` overwriting the non-key ``columns``.

    With nothing to overwrite the update is a no-op on the first key column (``k = k``), so a
    duplicate is kept as it is while every other error still raises (unlike ``INSERT IGNORE``).
    MySQL applies the update when any unique key of the table conflicts, not only ``key``.
    """
    from sqlalchemy.dialects.mysql import insert

    statement = insert(table)
    updates: dict[str, Any] = {
        name: statement.inserted[name] for name in columns if name not in key
    }
    if not updates:
        updates = {key[0]: table.c[key[0]]}
    upsert: Insert = statement.on_duplicate_key_update(updates)
    return upsert


def mysql_error_code(error: BaseException) -> int | None:
    """The server's (or client's) error number of a PyMySQL error, else ``None``."""
    pymysql = sys.modules.get("pymysql")
    if pymysql is None or not isinstance(error, pymysql.err.MySQLError):
        return None
    code = error.args[0] if error.args else 0
    return code if isinstance(code, int) else 0


def translate_mysql(code: int, error: BaseException) -> MessageError:
    """Our error for MySQL error number ``code``; reasons never quote a row value."""
    from dovetail.connectors.sql.engine import RowRejected

    detail = f"MySQL error {code}"
    message = str(error.args[1]) if len(error.args) > 1 else ""
    if code in _TRANSIENT:
        return TransientError(_TRANSIENT[code], detail=detail)
    if code in _CLIENT_ERRORS:
        return TransientError(f"cannot reach the database (MySQL error {code})", detail=detail)
    if code in (1062, 1586):
        return RowRejected(f"unique constraint {_match(_KEY, message)!r} violated", detail=detail)
    if code == 1048:
        return RowRejected(f"column {_column(message)!r} must not be null", detail=detail)
    if code == 1364:
        return RowRejected(
            f"column {_match(_FIELD, message)!r} must not be null (it has no default)",
            detail=detail,
        )
    if code in (1216, 1217, 1451, 1452):
        return RowRejected(
            f"foreign key constraint {_match(_CONSTRAINT, message)!r} violated", detail=detail
        )
    if code == 3819:  # MySQL: Check constraint 'name' is violated.
        name = _match(re.compile(r"constraint\s+'([^']+)'", re.IGNORECASE), message)
        return RowRejected(f"check constraint {name!r} violated", detail=detail)
    if code == 4025:  # MariaDB: CONSTRAINT `name` failed for `db`.`table`
        return RowRejected(
            f"check constraint {_match(_CONSTRAINT, message)!r} violated", detail=detail
        )
    if code in _DATA_PROBLEMS:
        column = _column(message)
        where = f" in column {column!r}" if column else ""
        return RowRejected(f"{_DATA_PROBLEMS[code]}{where} (MySQL error {code})", detail=detail)
    if code == 1644:  # SIGNAL in a trigger: its text may quote the row, so omit it
        return RowRejected("rejected by a trigger (SIGNAL)", detail=detail)
    pymysql = sys.modules.get("pymysql")
    if pymysql is not None and isinstance(
        error, pymysql.err.IntegrityError | pymysql.err.DataError
    ):
        return RowRejected(f"the row was refused (MySQL error {code})", detail=detail)
    if code in _SAFE_MESSAGES and message:
        return PermanentError(f"database error (MySQL error {code}): {message}", detail=detail)
    return PermanentError(f"database error (MySQL error {code})", detail=detail)


def _match(pattern: re.Pattern[str], message: str) -> str | None:
    # the last match: a quoted row value earlier in the text could look like a name
    found = pattern.findall(message)
    return str(found[-1]) if found else None


def _column(message: str) -> str | None:
    """The column named in a message: ``column 'c'`` or ``column `db`.`t`.`c```."""
    found = _match(_COLUMN, message)
    if found is None:
        return None
    return found.rsplit(".", 1)[-1].strip("`'\"") or None
