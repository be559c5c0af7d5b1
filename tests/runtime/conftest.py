"""Runtime tests run against both store backends where the store's limits matter."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from dovetail.store.base import Store
from dovetail.store.postgres import PostgresStore
from dovetail.store.sqlite import SqliteStore
from tests.store.conftest import fresh_postgres_url  # noqa: F401 (used by any_store)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    """A callable returning a new (unopened) store of either backend."""
    if request.param == "sqlite":
        return lambda: SqliteStore(tmp_path / "state.db")
    url = request.getfixturevalue("fresh_postgres_url")
    return lambda: PostgresStore(url)
