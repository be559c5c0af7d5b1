"""Fixtures for the NATS connector tests: a real JetStream server, one fresh stream per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import anyio
import pytest
from nats_support import NATS_URL, JetStream, create_stream, delete_stream
from tests.conftest import require_service


@pytest.fixture
def nats_url() -> str:
    require_service("NATS", "127.0.0.1", 4222)
    return NATS_URL


@pytest.fixture
def jetstream(nats_url: str) -> Iterator[JetStream]:
    """A fresh stream ``T_<hex>`` on subjects ``t<hex>.>``; deleted afterwards."""
    token = uuid.uuid4().hex[:12]
    kit = JetStream(url=nats_url, stream=f"T_{token}", prefix=f"t{token}")
    anyio.run(create_stream, nats_url, kit.stream, kit.prefix)
    try:
        yield kit
    finally:
        anyio.run(delete_stream, nats_url, kit.stream)
