"""Fixtures for the Redis streams tests: the real Redis at 127.0.0.1:6379.

Each test gets uniquely named streams, deleted afterwards with every dedupe key that names
them. Without Redis the tests skip, unless ``CI=true``: then they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from tests.conftest import require_service

REDIS_URL = os.environ.get("DOVETAIL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_url() -> str:
    """The Redis URL; skips (or fails under CI) when nothing answers there."""
    parts = urlsplit(REDIS_URL)
    require_service("Redis", parts.hostname or "127.0.0.1", parts.port or 6379)
    return REDIS_URL


@pytest.fixture
def rdb(redis_url: str) -> Iterator[Any]:
    """A synchronous client for arranging and inspecting streams (bytes in, bytes out)."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def streams(rdb: Any) -> Iterator[Callable[[str], str]]:
    """Hands out unique stream names; deletes them and their dedupe keys after the test."""
    handed: list[str] = []

    def name(prefix: str) -> str:
        handed.append(f"dovetail-test:{prefix}:{uuid.uuid4().hex[:12]}")
        return handed[-1]

    yield name
    for stream in handed:
        rdb.delete(stream)
        for key in rdb.scan_iter(match=f"*{{{stream}}}*", count=1000):
            rdb.delete(key)
