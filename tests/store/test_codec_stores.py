"""Through a real SQLite and PostgreSQL store: whatever a source accepted is stored and read back
equal, as a dead letter, an inbox row, a parked message, a journal event and a checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from itertools import count
from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dovetail.store.base import (
    BatchRecord,
    DeadLetter,
    DeadLetterQuery,
    JournalEvent,
    ParkedMessage,
    Store,
)
from tests.store.values import any_text, payloads, reader_values, same

StoreFactory = Callable[[], Store]
_ids = count()

per_store = settings(
    max_examples=40,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
headers = st.dictionaries(any_text, any_text, max_size=3)


def _in_store(factory: StoreFactory, scenario: Callable[[Store], Any]) -> None:
    async def main() -> None:
        store = factory()
        await store.open()
        try:
            await scenario(store)
        finally:
            await store.close()

    anyio.run(main)


@per_store
@given(payload=payloads, original=reader_values, headers=headers, text=any_text)
def test_a_settled_batch_reads_back_equal(
    store_factory: StoreFactory, payload: Any, original: Any, headers: dict[str, str], text: str
) -> None:
    message_id = f"m-{next(_ids)}"
    position = {"kind": "api", "ref": "request:1", "value": original}
    letter = DeadLetter(
        flow="codec",
        flow_version="1.0.0",
        message_id=message_id,
        correlation_id=message_id,
        step="sink:out",
        reason="payload cannot be written",
        error_class="PermanentError",
        attempt=1,
        payload=original,
        headers=headers,
        source_position=position,
        history=[{"note": original}],
    )
    parked = ParkedMessage(
        flow="codec",
        flow_version="1.0.0",
        sink="out",
        message_id=message_id,
        correlation_id=message_id,
        attempt=1,
        payload=payload,
        original=original,
        next_attempt_at=datetime(2000, 1, 1, tzinfo=UTC),
        reason="partner down",
        error_class="TransientError",
        headers=headers,
        source_position=position,
    )
    event = JournalEvent(message_id, message_id, "codec", "dead_lettered", "sink:out", {"v": text})

    async def scenario(store: Store) -> None:
        record = BatchRecord(flow="codec", dead_letters=[letter], journal=[event], parked=[parked])
        (letter_id,) = await store.settle_batch(record)
        (stored,) = await store.dead_letters(DeadLetterQuery(ids=[letter_id]))
        assert same(stored.payload, original)
        assert same(stored.headers, headers)
        assert same(stored.source_position, position)
        assert same(stored.history[0], {"note": original})
        (back,) = [p for p in await store.parked("codec") if p.message_id == message_id]
        assert same(back.payload, payload)
        assert same(back.original, original)
        assert same(back.headers, headers)
        (journal,) = await store.journal_for(message_id)
        assert same(journal.detail, {"v": text})
        if back.id is not None:
            await store.settle_batch(BatchRecord(flow="codec", unparked=[back.id]))

    _in_store(store_factory, scenario)


@per_store
@given(headers=headers, value=reader_values)
def test_inbox_headers_and_checkpoints_read_back_equal(
    store_factory: StoreFactory, headers: dict[str, str], value: Any
) -> None:
    async def scenario(store: Store) -> None:
        row = await store.inbox_put("codec", b"\x00\xff raw", headers, "req-1")
        (item,) = [i for i in await store.inbox_pending("codec", row - 1, 10) if i.id == row]
        assert item.payload == b"\x00\xff raw"
        assert same(item.headers, headers)
        await store.inbox_delete([row])
        await store.put_checkpoint("codec", "file:a.csv", {"value": value})
        assert same(await store.get_checkpoint("codec", "file:a.csv"), {"value": value})

    _in_store(store_factory, scenario)
