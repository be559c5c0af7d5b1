"""Fixtures for the MQTT tests: the real Mosquitto at 127.0.0.1:1883.

Each test gets unique topics and client ids; the persistent sessions it created are removed
afterwards (a clean-session connect under the same client id) and retained messages cleared.
Without a broker the tests skip, unless ``CI=true``: then they fail.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
from mqtt_support import HOST, PORT, Names, forget_session
from tests.conftest import require_service


@pytest.fixture
def broker() -> tuple[str, int]:
    """The broker's address; skips (or fails under CI) when nothing answers there."""
    require_service("Mosquitto (MQTT)", HOST, PORT)
    return HOST, PORT


@pytest.fixture
def names(broker: tuple[str, int]) -> Iterator[Names]:
    """Unique topics and client ids; sessions and retained messages are removed afterwards."""
    handed = Names()
    yield handed

    async def cleanup() -> None:
        for client_id in handed.client_ids:
            await forget_session(client_id)

    anyio.run(cleanup)
