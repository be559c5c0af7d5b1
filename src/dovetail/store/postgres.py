"""PostgreSQL store (asyncpg): the same tables, shared by several workers."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from dovetail.store.sql import SqlStore


class PostgresStore(SqlStore):
    """State in a PostgreSQL database given by a ``postgresql://`` URL."""

    def _create_engine(self) -> AsyncEngine:
        url = sa.engine.make_url(self.url)
        if url.drivername in {"postgresql", "postgres"}:
            url = url.set(drivername="postgresql+asyncpg")
        return create_async_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True)

    def _insert(self, table: sa.Table) -> Any:
        from sqlalchemy.dialects.postgresql import insert

        return insert(table)
