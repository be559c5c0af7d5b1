"""Fixtures for the AMQP connector tests: the real RabbitMQ at 127.0.0.1:5672 (guest/guest).

Each test gets uniquely named queues and exchanges, deleted afterwards. Without a broker the
tests skip, unless ``CI=true``: then they fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import anyio
import pytest
from amqp_support import AMQP_URL, broker, unique
from tests.conftest import require_service


@pytest.fixture
def rabbitmq() -> str:
    """The broker URL; skips (or fails under CI) when nothing answers there."""
    parts = urlsplit(AMQP_URL)
    require_service("RabbitMQ", parts.hostname or "127.0.0.1", parts.port or 5672)
    return AMQP_URL


@pytest.fixture
def names(rabbitmq: str) -> Iterator[Callable[[str], str]]:
    """Hands out unique queue/exchange names; deletes all of them after the test."""
    handed: list[str] = []

    def name(prefix: str) -> str:
        handed.append(unique(prefix))
        return handed[-1]

    yield name

    async def cleanup() -> None:
        async with broker() as client:
            await client.delete(queues=handed, exchanges=handed)

    if handed:
        anyio.run(cleanup)
