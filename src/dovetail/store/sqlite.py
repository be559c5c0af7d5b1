"""The embedded store: SQLite under ``.dovetail/`` in WAL mode, via SQLAlchemy Core (aiosqlite).

``synchronous=FULL``: a commit is on disk before the call returns, so an acknowledged webhook
or a settled batch survives ``kill -9`` and power loss alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from dovetail.store.sql import SqlStore


class SqliteStore(SqlStore):
    """State in one SQLite file; created with its folder on first open."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        super().__init__(f"sqlite:///{self.path}")

    def _create_engine(self) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            f"sqlite+aiosqlite:///{self.path}", pool_size=4, max_overflow=4
        )

        @sa.event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine

    def _insert(self, table: sa.Table) -> Any:
        from sqlalchemy.dialects.sqlite import insert

        return insert(table)
