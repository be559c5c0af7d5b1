"""Helpers shared by the SQL connector tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dovetail.core.ack import Settlement
from dovetail.core.envelope import Envelope
from dovetail.testing.components import build_component

POSTGRES_URL = os.environ.get(
    "DOVETAIL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
"""The PostgreSQL the tests use: the local service unless the environment names another."""


def envelopes(payloads: Sequence[Any]) -> list[Envelope]:
    """One envelope per payload, as a source would emit them."""
    return [Envelope(payload=payload, settlement=Settlement()) for payload in payloads]


def build_sink(snippet: str, project_dir: Path) -> Any:
    """The ``sql`` sink built from YAML through the real registry."""
    return build_component("sink", snippet, project_dir)


async def write_once(sink: Any, payloads: Sequence[Any]) -> list[BaseException | None]:
    """Open ``sink``, write one batch, close it; the per-message results."""
    await sink.open()
    try:
        results: list[BaseException | None] = await sink.write(envelopes(payloads))
        return results
    finally:
        await sink.close()


async def pg_execute(url: str, sql: str) -> None:
    """Run a script on PostgreSQL with a plain asyncpg connection."""
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def pg_fetch(url: str, sql: str) -> list[dict[str, Any]]:
    """Rows of a query as dicts."""
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        return [dict(record) for record in await connection.fetch(sql)]
    finally:
        await connection.close()
