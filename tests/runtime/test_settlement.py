"""A batch's settlement write: one message the store refuses never stops the flow or the batch,
and a store outage is waited out with the messages unacked."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dovetail.api import run_flow_async
from dovetail.config.loader import load_flow
from dovetail.config.model import Flow
from dovetail.core.envelope import Envelope
from dovetail.delivery.clock import FakeClock
from dovetail.errors import PermanentError, StoreError
from dovetail.runtime.settlement import is_data_error, safe_record
from dovetail.store.base import (
    BatchRecord,
    DeadLetter,
    DeadLetterQuery,
    Delivery,
    JournalEvent,
    ParkedMessage,
    Store,
)
from dovetail.store.codec import MAX_DEPTH
from dovetail.store.sqlite import SqliteStore
from dovetail.testing.fakes import CaptureSink, ListSource
from tests.store.conftest import fresh_postgres_url  # noqa: F401 (a fixture of any_store)
from tests.store.values import any_text, payloads

StoreFactory = Callable[[], Store]


FLOW = """
flow: orders
source: {file: {path: in/*.jsonl, format: jsonl}}
sinks:
  a: {file: {path: out/a.jsonl, format: jsonl}}
delivery: {idempotency_key: id, retry: {attempts: 1}}
"""

UNSTORABLE_REASON = "partner answered: bad value \ud800 \x00 here"
"""A lone surrogate (refused by SQLite and PostgreSQL) and a NUL (refused by PostgreSQL)."""


class PickySink(CaptureSink):
    """Delivers every message but the one with ``id`` 2, which it fails with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__("a")
        self.reason = reason

    async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
        results: list[BaseException | None] = []
        for envelope in batch:
            if envelope.payload["id"] == 2:
                results.append(PermanentError(self.reason))
            else:
                self.received.append(envelope.payload)
                self.envelopes.append(envelope)
                results.append(None)
        return results


def write_flow(project: Path) -> Flow:
    path = project / "flows" / "orders.yaml"
    path.write_text(FLOW, encoding="utf-8")
    return load_flow(path)


def nested(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def run_three(
    project: Path, any_store: StoreFactory, second: dict[str, Any], reason: str
) -> tuple[DeadLetter, set[str], list[str], ListSource, PickySink]:
    """Orders 1, ``second`` (id 2, failed by the sink with ``reason``) and 3 through the flow."""
    flow = write_flow(project)
    source = ListSource([{"id": 1, "name": "order 1"}, second, {"id": 3, "name": "order 3"}])
    sink = PickySink(reason)
    found: dict[str, Any] = {}

    async def main() -> None:
        store = any_store()
        await store.open()
        try:
            summary = await run_flow_async(flow, store=store, source=source, sinks={"a": sink})
            (found["letter"],) = await store.dead_letters(DeadLetterQuery(flow="orders"))
            found["keys"] = await store.delivered_keys("orders", "a", ["1", "2", "3"])
            found["journal"] = [
                e.event for i in (1, 3) for e in await store.journal_for(_id(sink, i))
            ]
        finally:
            await store.close()
        assert summary.dead_lettered == 1 and summary.delivered == {"a": 2}

    anyio.run(main)
    return found["letter"], found["keys"], found["journal"], source, sink


def test_a_reason_no_store_can_hold_is_cleaned_and_the_payload_kept(
    project: Path, any_store: StoreFactory
) -> None:
    second = {"id": 2, "name": "order 2"}
    letter, keys, journal, source, sink = run_three(project, any_store, second, UNSTORABLE_REASON)
    assert letter.reason == "partner answered: bad value \ufffd \ufffd here"
    assert letter.payload == second
    assert keys == {"1", "3"} and journal == ["delivered", "delivered"]
    assert source.acked == 3
    assert [p["id"] for p in sink.received] == [1, 3]


def test_a_message_the_store_refuses_is_stored_safely_and_the_rest_settles(
    project: Path, any_store: StoreFactory
) -> None:
    second = {"id": 2, "name": "order 2", "deep": nested(MAX_DEPTH + 50)}
    letter, keys, journal, source, sink = run_three(project, any_store, second, "rejected")
    assert letter.reason.startswith("rejected (stored in a safe form, the store refused it:")
    assert "nested deeper than" in letter.reason
    assert isinstance(letter.payload, bytes) and b"'order 2'" in letter.payload
    assert keys == {"1", "3"} and journal == ["delivered", "delivered"]
    assert source.acked == 3
    assert [p["id"] for p in sink.received] == [1, 3]


def _id(sink: CaptureSink, order: int) -> str:
    return next(e.id for e in sink.envelopes if e.payload["id"] == order)


class FlakyStore(SqliteStore):
    """Unavailable for its first ``outages`` settlement writes (as a locked or full disk)."""

    def __init__(self, path: Path, outages: int, source: ListSource) -> None:
        super().__init__(path)
        self.outages = outages
        self.source = source
        self.acked_during_outage: list[int] = []

    async def settle_batch(self, record: BatchRecord) -> list[int]:
        if self.outages:
            self.outages -= 1
            self.acked_during_outage.append(self.source.acked)
            raise StoreError("store sqlite:///s.db: database is locked")
        return await super().settle_batch(record)


def test_a_store_outage_is_waited_out_with_the_messages_unacked(project: Path) -> None:
    flow = write_flow(project)
    source = ListSource([{"id": 1}, {"id": 3}])
    sink = PickySink("unused")
    clock = FakeClock()

    async def main() -> None:
        store = FlakyStore(project / "s.db", 4, source)
        await store.open()
        try:
            await run_flow_async(flow, store=store, source=source, sinks={"a": sink}, clock=clock)
        finally:
            await store.close()
        assert store.acked_during_outage == [0, 0, 0, 0]

    anyio.run(main)
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0]
    assert source.acked == 2


def test_errors_are_told_apart_by_what_the_store_said() -> None:
    assert is_data_error(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"))
    wrapped = StoreError("store: value out of range")
    wrapped.__cause__ = OverflowError("Python int too large to convert to SQLite INTEGER")
    assert is_data_error(wrapped)
    assert not is_data_error(StoreError("store sqlite:///s.db: database is locked"))
    assert not is_data_error(ConnectionRefusedError("refused"))


@settings(
    max_examples=25,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    payload=payloads,
    text=any_text,
    key=st.text(st.characters(codec=None, categories=None), max_size=700),
)
def test_the_safe_form_of_any_message_is_accepted_by_the_store(
    any_store: StoreFactory, payload: Any, text: str, key: str
) -> None:
    """Whatever a message holds, its safe form is stored: the write cannot fail twice."""
    letter = DeadLetter(
        flow="orders",
        flow_version=text * 30,
        message_id="m" + text * 40,
        correlation_id=text * 70,
        step=text * 120,
        reason=text,
        error_class=text * 120,
        attempt=2**40,
        payload=payload,
        headers={text: text},
        source_position={"ref": text, "value": payload},
        detail=text,
    )
    parked = ParkedMessage(
        flow="orders",
        flow_version="1",
        sink=text,
        message_id="m",
        correlation_id="c",
        attempt=1,
        payload=payload,
        original=payload,
        next_attempt_at=datetime(2000, 1, 1, tzinfo=UTC),
        reason=text,
        error_class="TransientError",
    )
    event = JournalEvent("m" + text * 40, "c", "orders", "delivered", text * 120, {text: payload})
    part = BatchRecord(
        flow="orders",
        dead_letters=[letter],
        deliveries=[Delivery(text, key, "m")],
        parked=[parked],
        journal=[event],
    )

    async def main() -> None:
        store = any_store()
        await store.open()
        try:
            ids = await store.settle_batch(safe_record(part, "refused"))
        finally:
            await store.close()
        assert len(ids) == 2  # the dead letter and the message that could not be parked

    anyio.run(main)
