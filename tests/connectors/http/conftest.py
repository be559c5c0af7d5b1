"""Fixtures for the HTTP connector tests: a real partner API on 127.0.0.1, both stores."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.store.conftest import fresh_postgres_url

from dovetail.store.base import Store
from dovetail.store.postgres import PostgresStore
from dovetail.store.sqlite import SqliteStore
from dovetail.testing.partner import PartnerServer

__all__ = ["fresh_postgres_url"]

CLIENT_ID = "shop"
CLIENT_SECRET = "s3cret-Value-42"


@pytest.fixture
def partner() -> Iterator[PartnerServer]:
    """A partner API without OAuth, resource paths /sales-orders and /orders/{order_id}."""
    with PartnerServer(paths=("/sales-orders", "/orders/{order_id}")) as server:
        yield server


@pytest.fixture
def oauth_partner() -> Iterator[PartnerServer]:
    """A partner API that requires OAuth2 client-credentials tokens."""
    with PartnerServer(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    """A callable returning a new (unopened) store: SQLite, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return lambda: SqliteStore(tmp_path / "state.db")
    url = request.getfixturevalue("fresh_postgres_url")
    return lambda: PostgresStore(url)


@pytest.fixture(params=["httptools", "h11"])
def http_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test once per HTTP parser of the embedded server (httptools where installed)."""
    from dovetail.connectors.http import server

    if request.param == "httptools" and server.HttpToolsProtocol is None:
        pytest.skip("httptools is not installed on this platform")
    monkeypatch.setattr(server, "HTTP_PARSER", request.param)
    return str(request.param)
