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
    ParkedMessage,
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
        pending = await store.inbox_pending("hook", 10)
        assert [i.id for i in pending] == [first, second]
        assert pending[0].payload == b'{"a":1}' and pending[0].headers == {"x-correlation-id": "c"}
        assert [i.id for i in await store.inbox_pending("hook", 10, {first})] == [second]
        await store.inbox_delete([first])
        assert [i.id for i in await store.inbox_pending("hook", 10)] == [second]

    run(store_factory, scenario)


def test_inbox_ids_are_never_reused_after_the_inbox_drained(store_factory: StoreFactory) -> None:
    async def scenario(store: Store) -> None:
        drained = [await store.inbox_put("hook", b"{}", {}, f"r-{n}") for n in range(3)]
        await store.inbox_delete(drained)
        assert await store.inbox_pending("hook", 10) == []
        again = await store.inbox_put("hook", b"{}", {}, "r-again")
        assert again > max(drained)

    run(store_factory, scenario)


def test_inbox_pending_skips_the_given_ids_and_honours_the_limit(
    store_factory: StoreFactory,
) -> None:
    async def scenario(store: Store) -> None:
        ids = [await store.inbox_put("hook", b"{}", {}, f"r-{n}") for n in range(6)]
        await store.inbox_put("other", b"{}", {}, "r-other")
        skip = {ids[0], ids[2], ids[3]}
        assert [i.id for i in await store.inbox_pending("hook", 2, skip)] == [ids[1], ids[4]]
        assert [i.id for i in await store.inbox_pending("hook", 10, set(ids))] == []
        assert [i.id for i in await store.inbox_pending("hook", 1)] == [ids[0]]

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


def _parked(**overrides: object) -> ParkedMessage:
    fields: dict[str, object] = {
        "flow": "orders",
        "flow_version": "1.0.0",
        "sink": "erp",
        "message_id": "m-1",
        "correlation_id": "c-1",
        "attempt": 2,
        "payload": {"order_id": "A-1", "total": "9.50"},
        "original": {"order_id": "A-1", "total": 9.5},
        "next_attempt_at": datetime.now(UTC) - timedelta(seconds=1),
        "reason": "HTTP 429 from partner",
        "error_class": "RateLimited",
        "headers": {"idempotency-key": "A-1"},
        "idempotency_key": "A-1",
    }
    fields.update(overrides)
    return ParkedMessage(**fields)  # type: ignore[arg-type]


def test_parked_messages_are_claimed_when_due_and_leased(store_factory: StoreFactory) -> None:
    async def scenario(store: Store) -> None:
        later = datetime.now(UTC) + timedelta(hours=1)
        await store.settle_batch(
            BatchRecord(
                flow="orders",
                parked=[
                    _parked(),
                    _parked(message_id="m-2", idempotency_key="B", next_attempt_at=later),
                    _parked(flow="other", message_id="m-3"),
                ],
            )
        )
        assert await store.parked_count("orders") == 2
        assert await store.parked_count() == 3
        claimed = await store.claim_parked("orders", datetime.now(UTC), 60.0, 10)
        assert [m.message_id for m in claimed] == ["m-1"]
        message = claimed[0]
        assert message.payload == {"order_id": "A-1", "total": "9.50"}
        assert message.original == {"order_id": "A-1", "total": 9.5}
        assert message.attempt == 2
        assert message.history[0]["reason"] == "HTTP 429 from partner"
        # leased: not claimable again until the lease runs out
        assert await store.claim_parked("orders", datetime.now(UTC), 60.0, 10) == []
        soon = datetime.now(UTC) + timedelta(seconds=61)
        assert [m.message_id for m in await store.claim_parked("orders", soon, 60.0, 10)] == ["m-1"]

    run(store_factory, scenario)


def test_only_the_oldest_parked_message_of_a_key_is_due(store_factory: StoreFactory) -> None:
    async def scenario(store: Store) -> None:
        later = datetime.now(UTC) + timedelta(hours=1)
        await store.settle_batch(
            BatchRecord(
                flow="orders",
                parked=[
                    _parked(message_id="k1-a", ordering_key="K1", next_attempt_at=later),
                    _parked(message_id="k1-b", ordering_key="K1", idempotency_key="x"),
                    _parked(message_id="k2-a", ordering_key="K2", idempotency_key="y"),
                    _parked(message_id="k2-other-sink", sink="wms", ordering_key="K1"),
                    _parked(message_id="dup-b", idempotency_key="y"),
                ],
            )
        )
        claimed = await store.claim_parked("orders", datetime.now(UTC), 60.0, 10)
        assert [m.message_id for m in claimed] == ["k2-a", "k2-other-sink"]
        held_order, held_keys = await store.parked_blocking(
            "orders", "erp", ["K1", "K9"], ["x", "y", "z"]
        )
        assert held_order == {"K1"}
        assert held_keys == {"x", "y"}

    run(store_factory, scenario)


def test_parked_messages_are_updated_and_removed_in_the_settlement(
    store_factory: StoreFactory,
) -> None:
    async def scenario(store: Store) -> None:
        await store.settle_batch(
            BatchRecord(flow="orders", parked=[_parked(), _parked(message_id="m-2")])
        )
        first, second = await store.parked("orders")
        again = datetime.now(UTC) + timedelta(minutes=5)
        first.attempt = 3
        first.reason = "HTTP 503 from partner"
        first.next_attempt_at = again
        await store.settle_batch(
            BatchRecord(flow="orders", parked=[first], unparked=[second.id or 0])
        )
        (left,) = await store.parked("orders")
        assert left.id == first.id
        assert left.attempt == 3
        assert abs((left.next_attempt_at - again).total_seconds()) < 0.01
        assert [h["reason"] for h in left.history] == [
            "HTTP 429 from partner",
            "HTTP 503 from partner",
        ]

    run(store_factory, scenario)


def test_a_dead_letter_keeps_the_history_it_is_given(store_factory: StoreFactory) -> None:
    async def scenario(store: Store) -> None:
        earlier = {"at": 1.0, "reason": "HTTP 429", "attempt": 1}
        letter = _letter(history=[earlier])
        await store.settle_batch(BatchRecord(flow="orders", dead_letters=[letter]))
        (stored,) = await store.dead_letters(DeadLetterQuery(flow="orders"))
        assert stored.history[0] == earlier
        assert stored.history[1]["reason"] == letter.reason

    run(store_factory, scenario)
