"""Idempotency and ordering keys the store cannot keep dead-letter their message, with a reason;
they never stop the flow or its batch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from dovetail.api import run_flow_async
from dovetail.config.loader import load_flow
from dovetail.store.base import DeadLetterQuery, Store
from dovetail.testing.fakes import CaptureSink, ListSource

FLOW = """
flow: orders
source: {{file: {{path: in/*.jsonl, format: jsonl}}}}
sinks:
  a: {{file: {{path: out/a.jsonl, format: jsonl}}}}
delivery: {{{key}: {{key: id}}, retry: {{attempts: 1}}}}
runtime: {{workers: 2}}
"""

LONG = "longer than 500 characters"
UNKEEPABLE = "holding a NUL or a lone surrogate"
BAD_KEYS = {"x" * 501: LONG, "a\ud800b": UNKEEPABLE, "a\x00b": UNKEEPABLE}


@pytest.mark.parametrize("declaration", ["ordering", "idempotency_key"])
def test_a_key_the_store_cannot_keep_dead_letters_only_its_message(
    project: Path, any_store: Callable[[], Store], declaration: str
) -> None:
    key = "ordering: {key: id}" if declaration == "ordering" else "idempotency_key: id"
    text = FLOW.format(key="KEY").replace("KEY: {key: id}", key)
    (project / "flows" / "orders.yaml").write_text(text, encoding="utf-8")
    flow = load_flow(project / "flows" / "orders.yaml")
    source = ListSource([{"id": "good-1"}, *({"id": k} for k in BAD_KEYS), {"id": "good-2"}])
    sink = CaptureSink("a")

    async def main() -> None:
        store = any_store()
        await store.open()
        try:
            summary = await run_flow_async(flow, store=store, source=source, sinks={"a": sink})
            letters = await store.dead_letters(DeadLetterQuery(flow="orders"))
        finally:
            await store.close()
        assert summary.delivered == {"a": 2} and summary.dead_lettered == 3
        reasons = sorted(letter.reason.split(" gave a value ")[1] for letter in letters)
        assert reasons == sorted(BAD_KEYS.values())
        assert all(letter.step == "delivery" for letter in letters)

    anyio.run(main)
    assert source.acked == 5
    assert sorted(p["id"] for p in sink.received) == ["good-1", "good-2"]
