"""The SQLite store's schema: the tables of ``schema.py``, created and versioned in SQLite.

The DDL is what SQLAlchemy compiles for those tables, so a store file is the same whichever
release created it. An up-to-date store is only read when opened: opening never waits for
another process's write lock (``dovetail dlq list`` while ``dovetail run`` writes).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

import sqlalchemy as sa

from dovetail.errors import StoreError
from dovetail.store import schema as t
from dovetail.store.sqlite_thread import in_transaction


def migrate(connection: sqlite3.Connection) -> None:
    """Create the schema version table, then every table of the versions not applied yet;
    raises ``StoreError`` for a store newer than this release."""
    newest = max(version for version, _ in t.MIGRATIONS)
    if _schema_version(connection) == newest:
        return

    def apply(connection: sqlite3.Connection) -> None:
        connection.execute(_ddl(t.schema_version)[0])
        current = _schema_version(connection) or 0
        for version, changes in t.MIGRATIONS:
            if version <= current:
                continue
            for change in changes:
                if isinstance(change, t.NewColumns):
                    _add_columns(connection, change)
                    continue
                for statement in _ddl(change):
                    connection.execute(statement)
            upgrade = _UPGRADES.get(version)
            if upgrade is not None:
                upgrade(connection)
            connection.execute(
                "INSERT INTO dovetail_schema_version (version, applied_at) VALUES (?, ?)",
                (version, time.time()),
            )

    in_transaction(connection, apply)


def _inbox_autoincrement(connection: sqlite3.Connection) -> None:
    """Version 3: rebuild ``dovetail_inbox`` with ``AUTOINCREMENT`` so a drained inbox never
    hands out an id again (a plain ``INTEGER PRIMARY KEY`` reuses the highest free one). The
    waiting rows keep their ids; the sequence starts after the highest of them."""
    row = connection.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'dovetail_inbox'"
    ).fetchone()
    if row is None or "AUTOINCREMENT" in str(row[0]).upper():
        return
    connection.execute("DROP INDEX IF EXISTS ix_dovetail_inbox_flow")
    connection.execute("ALTER TABLE dovetail_inbox RENAME TO dovetail_inbox_v2")
    for statement in _ddl(t.inbox):
        connection.execute(statement)
    columns = ", ".join(column.name for column in t.inbox.columns)
    connection.execute(
        f"INSERT INTO dovetail_inbox ({columns}) SELECT {columns} FROM dovetail_inbox_v2"
    )
    connection.execute("DROP TABLE dovetail_inbox_v2")


_UPGRADES: dict[int, Callable[[sqlite3.Connection], None]] = {3: _inbox_autoincrement}
"""SQLite-only steps of a schema version, run after its tables are created."""


def _schema_version(connection: sqlite3.Connection) -> int | None:
    """The store's schema version; ``None`` before the version table exists. Raises
    ``StoreError`` for a version newer than this release knows."""
    exists = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'dovetail_schema_version'"
    ).fetchone()
    if exists is None:
        return None
    row = connection.execute("SELECT max(version) FROM dovetail_schema_version").fetchone()
    current = int(row[0] or 0)
    newest = max(version for version, _ in t.MIGRATIONS)
    if current > newest:
        raise StoreError(f"store schema version {current} is newer than this release")
    return current


def _add_columns(connection: sqlite3.Connection, change: t.NewColumns) -> None:
    """Add the columns ``change`` names that the table lacks, its indexes, then backfill."""
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateColumn

    name = change.table.name
    present = {row[1] for row in connection.execute(f"PRAGMA table_info({name})")}
    for column in change.columns:
        if column not in present:
            spec = CreateColumn(change.table.c[column]).compile(dialect=sqlite.dialect())
            connection.execute(f"ALTER TABLE {name} ADD COLUMN {spec}")
    for statement in _ddl(change.table)[1:]:
        connection.execute(statement)
    if "sqlite" in change.backfill:
        connection.execute(change.backfill["sqlite"])


def _ddl(table: sa.Table) -> list[str]:
    """``CREATE TABLE/INDEX IF NOT EXISTS`` for ``table`` as SQLAlchemy compiles it for SQLite."""
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    dialect = sqlite.dialect()
    statements = [str(CreateTable(table, if_not_exists=True).compile(dialect=dialect))]
    for index in sorted(table.indexes, key=lambda index: str(index.name)):
        statements.append(str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect)))
    return statements
