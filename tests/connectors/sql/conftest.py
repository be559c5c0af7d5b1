"""Fixtures for the SQL connector tests: SQLite files under tmp_path and a real PostgreSQL.

PostgreSQL is the local service at 127.0.0.1:5432 (trust auth, database ``test``), or the URL
in ``DOVETAIL_TEST_POSTGRES_URL``. Each test gets its own schema, dropped afterwards. Without a
server the PostgreSQL tests skip, unless ``CI=true``: then they fail.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from sql_support import POSTGRES_URL, pg_execute


def _postgres_answers() -> bool:
    parts = urlsplit(POSTGRES_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), 2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL URL; skips (or fails when CI=true) if nothing answers there."""
    if not _postgres_answers():
        parts = urlsplit(POSTGRES_URL)
        message = f"PostgreSQL is not reachable at {parts.hostname}:{parts.port or 5432}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return POSTGRES_URL


@pytest.fixture
def pg_schema(postgres_url: str) -> Iterator[str]:
    """A fresh schema for one test, dropped with everything in it afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    asyncio.run(pg_execute(postgres_url, f"CREATE SCHEMA {name}"))
    try:
        yield name
    finally:
        asyncio.run(pg_execute(postgres_url, f"DROP SCHEMA {name} CASCADE"))
