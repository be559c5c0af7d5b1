"""Helpers for the safe-defaults tests: run a flow for real and read its dead letters."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import orjson

from dovetail.api import run_flow
from dovetail.store.base import DeadLetterQuery
from dovetail.store.sqlite import SqliteStore


@dataclass
class FlowResult:
    """What a flow wrote to its JSON Lines outbox and the reasons it dead-lettered."""

    delivered: list[Any]
    reasons: list[str]


def run_flow_file(project: Path, flow_yaml: str, *, outbox: str = "outbox/out.jsonl") -> FlowResult:
    """Write ``flows/f.yaml``, run it once with the SQLite store, collect the outcome."""
    (project / "flows").mkdir(exist_ok=True)
    (project / "flows/f.yaml").write_text(flow_yaml, encoding="utf-8")
    run_flow(project / "flows/f.yaml")
    out = project / outbox
    delivered = (
        [orjson.loads(line) for line in out.read_bytes().splitlines()] if out.exists() else []
    )

    async def reasons() -> list[str]:
        store = SqliteStore(project / ".dovetail/state.db")
        await store.open()
        try:
            letters = await store.dead_letters(DeadLetterQuery(flow="f", status=None))
        finally:
            await store.close()
        return [letter.reason for letter in letters]

    return FlowResult(delivered, anyio.run(reasons))
