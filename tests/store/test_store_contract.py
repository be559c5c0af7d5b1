"""The Store contract, run against every backend."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import anyio

from dovetail.store.base import (
    BatchRecord,
    DeadLetter,
    DeadLetterQuery,
    Delivery,
    JournalEvent,
    Store,
)

StoreFactory = Callable[[], Store]


def _letter(**overrides: object) -> DeadLetter:
    fields: dict[str, object] = {
        "flow": "orders",
        "flow_version": "1.0.0",
        "message_id": "m-1",
        "correlation_id": "c-1",
        "step": "lookup",
        "reason": "lookup: key 'x' not found",
        "error_class": "LookupMissing",
        "attempt": 1,
        "payload": {"order_id": "A-1", "nested": {"n": 1}},
        "source_position": {"kind": "file", "ref": "in.csv", "line": 3, "offset": 1},
    }
    fields.update(overrides)
    return DeadLetter(**fields)  # type: ignore[arg-type]


def run(factory: StoreFactory, scenario: Callable[[Store], object]) -> None:
    async def main() -> None:
        store = factory()
        await store.open()
        try:
            await scenario(store)  # type: ignore[misc]
        finally:
            await store.close()

    anyio.run(main)


def test_checkpoints_are_upserted_and_deleted(store_factory: StoreFactory) -> None:
    async def scenario(store: Store) -> None:
        assert await store.get_checkpoint("f", "file:a.csv") is None
        await store.put_checkpoint("f", "file:a.csv", {"records": 5})
        await store.put_checkpoint("f", "file:a.csv", {"records": 9})
        assert await store.get_checkpoint("f", "file:a.csv") == {"records": 9}
        assert await store.get_checkpoint("other", "file:a.csv") is None
        await store.delete_checkpoint("f", "file:a.csv")
        assert await store.get_checkpoint("f", "file:a.csv") is None

    run(store_factory, scenario)


def test_inbox_keeps_messages_until_deleted(store_factory: StoreFactory) -> None:
    async def scenario(store: Store) -> None:
        first = await store.inbox_put("hook", b'{"a":1}', {"x-correlation-id": "c"}, "req-1")
        second = await store.inbox_put("hook", b'{"a":2}', {}, "req-2")
        await store.inbox_put("other", b"{}", {}, "req-3")
        pending = await store.inbox_pending("hook", 0, 10)
        assert [i.id for i in pending] == [first, second]
        assert pending[0].payload == b'{"a":1}' and pending[0].headers == {"x-correlation-id": "c"}
        assert [i.id for i in await store.inbox_pending("hook", first, 10)] == [second]
        await store.inbox_delete([first])
        assert [i.id for i in await store.inbox_pending("hook", 0, 10)] == [second]

    run(store_factory, scenario)


def test_settle_batch_writes_dead_letters_keys_and_journal_together(
    store_factory: StoreFactory,
) -> None:
    async def scenario(store: Store) -> None:
        ids = await store.settle_batch(
            BatchRecord(
                flow="orders",
                dead_letters=[_letter()],
                deliveries=[Delivery("erp", "A-2", "m-2"), Delivery("erp", "A-3", "m-3")],
                journal=[JournalEvent("m-2", "c-2", "orders", "delivered", "sink:erp")],
            )
        )
        assert len(ids) == 1
        assert await store.delivered_keys("orders", "erp", ["A-1", "A-2", "A-3"]) == {"A-2", "A-3"}
        assert await store.delivered_keys("orders", "db", ["A-2"]) == set()
        letters = await store.dead_letters(DeadLetterQuery(flow="orders"))
        assert len(letters) == 1
        letter = letters[0]
        assert letter.payload == {"order_id": "A-1", "nested": {"n": 1}}
        assert letter.source_position == {"kind": "file", "ref": "in.csv", "line": 3, "offset": 1}
        assert letter.status == "open" and letter.attempt == 1 and len(letter.history) == 1
        events = await store.journal_for("c-2")
        assert [(e.event, e.step) for e in events] == [("delivered", "sink:erp")]

    run(store_factory, scenario)


def test_a_replay_that_fails_again_reopens_the_same_entry_with_history(
    store_factory: StoreFactory,
) -> None:
    async def scenario(store: Store) -> None:
        (first,) = await store.settle_batch(BatchRecord(flow="orders", dead_letters=[_letter()]))
        again = _letter(id=first, step="sink:erp", reason="HTTP 422", attempt=3)
        assert await store.settle_batch(BatchRecord(flow="orders", dead_letters=[again])) == [first]
        (letter,) = await store.dead_letters(DeadLetterQuery(ids=[first]))
        assert letter.reason == "HTTP 422" and letter.attempt == 4
        assert [h["reason"] for h in letter.history] == ["lookup: key 'x' not found", "HTTP 422"]

    run(store_factory, scenario)


def test_replayed_entries_leave_the_open_queue(store_factory: StoreFactory) -> None:
    async def scenario(store: Store) -> None:
        ids = await store.settle_batch(
            BatchRecord(flow="orders", dead_letters=[_letter(), _letter(message_id="m-9")])
        )
        await store.settle_batch(BatchRecord(flow="orders", replayed=[ids[0]]))
        open_ids = [d.id for d in await store.dead_letters(DeadLetterQuery())]
        assert open_ids == [ids[1]]
        assert await store.set_dead_letter_status([ids[1]], "discarded") == 1
        assert await store.dead_letters(DeadLetterQuery()) == []
        all_letters = await store.dead_letters(DeadLetterQuery(status=None))
        assert sorted(d.status for d in all_letters) == ["discarded", "replayed"]

    run(store_factory, scenario)


def test_dead_letters_filter_by_reason_and_time(store_factory: StoreFactory) -> None:
    async def scenario(store: Store) -> None:
        await store.settle_batch(
            BatchRecord(
                flow="orders",
                dead_letters=[_letter(reason="schema violation at /email"), _letter()],
            )
        )
        found = await store.dead_letters(DeadLetterQuery(reason="schema"))
        assert [d.reason for d in found] == ["schema violation at /email"]
        future = datetime.now(UTC) + timedelta(hours=1)
        assert await store.dead_letters(DeadLetterQuery(since=future)) == []
        assert len(await store.dead_letters(DeadLetterQuery(until=future))) == 2
        percent = await store.dead_letters(DeadLetterQuery(reason="%"))
        assert percent == []  # LIKE wildcards in the filter are literal

    run(store_factory, scenario)


def test_raw_bytes_payloads_survive_the_dead_letter_queue(store_factory: StoreFactory) -> None:
    async def scenario(store: Store) -> None:
        await store.settle_batch(
            BatchRecord(flow="f", dead_letters=[_letter(payload=b"\xff\x00not json")])
        )
        (letter,) = await store.dead_letters(DeadLetterQuery())
        assert letter.payload == b"\xff\x00not json"

    run(store_factory, scenario)


def test_a_limited_listing_keeps_the_newest(store_factory: StoreFactory) -> None:
    async def scenario(store: Store) -> None:
        ids = await store.settle_batch(
            BatchRecord(flow="f", dead_letters=[_letter(message_id=f"m{i}") for i in range(5)])
        )
        newest = await store.dead_letters(DeadLetterQuery(limit=2, newest=True))
        assert [d.id for d in newest] == ids[-2:]
        oldest = await store.dead_letters(DeadLetterQuery(limit=2))
        assert [d.id for d in oldest] == ids[:2]

    run(store_factory, scenario)
