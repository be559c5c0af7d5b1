"""Both store backends, so every store test runs against SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

from dovetail.store.base import Store
from dovetail.store.postgres import PostgresStore
from dovetail.store.sqlite import SqliteStore
from tests.conftest import require_service


def _admin(sql: str) -> None:
    import asyncpg

    async def main() -> None:
        conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    anyio.run(main)


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    name = f"dovetail_t_{secrets.token_hex(6)}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A callable returning a new (unopened) store of the parametrised backend."""
    if request.param == "sqlite":
        return lambda: SqliteStore(tmp_path / "state.db")
    url = request.getfixturevalue("fresh_postgres_url")
    return lambda: PostgresStore(url)


async def opened(store: Store) -> AsyncIterator[Store]:
    await store.open()
    try:
        yield store
    finally:
        await store.close()
