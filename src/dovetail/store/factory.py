"""Pick the store backend from its URL."""

from __future__ import annotations

from pathlib import Path

from dovetail.errors import ConfigError, Problem
from dovetail.store.base import Store


def store_from_url(url: str, *, origin: str = "dovetail.yaml") -> Store:
    """``sqlite:///path`` -> SQLite (embedded); ``postgresql://...`` -> PostgreSQL."""
    if url.startswith("sqlite:///"):
        from dovetail.store.sqlite import SqliteStore

        return SqliteStore(Path(url[len("sqlite:///") :]))
    if url.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
        from dovetail.store.postgres import PostgresStore

        return PostgresStore(url)
    scheme = url.split(":", 1)[0]
    raise ConfigError(
        [
            Problem(
                origin,
                1,
                1,
                f"unsupported store URL scheme {scheme!r}; use sqlite:/// or postgresql://",
            )
        ]
    )
