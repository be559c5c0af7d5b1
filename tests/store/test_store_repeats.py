"""Repeated dead letters fold into the open entry, and business keys find messages: both
backends."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import anyio
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from dovetail.store.base import BatchRecord, DeadLetter, DeadLetterQuery, Store, TraceKey
from dovetail.store.repeats import fold_repeats
from dovetail.store.sqlite import SqliteStore

StoreFactory = Callable[[], Store]


def _letter(**overrides: object) -> DeadLetter:
    fields: dict[str, object] = {
        "flow": "orders",
        "flow_version": "1.0.0",
        "message_id": "m-1",
        "correlation_id": "c-1",
        "step": "map",
        "reason": "map: field order_date: invalid date",
        "error_class": "MappingError",
        "attempt": 1,
        "payload": {"order_id": "A-1"},
        "idempotency_key": "A-1",
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


def test_the_same_failure_of_the_same_key_is_a_repeat_not_a_new_entry(
    store_factory: StoreFactory,
) -> None:
    async def scenario(store: Store) -> None:
        (first,) = await store.settle_batch(BatchRecord(flow="orders", dead_letters=[_letter()]))
        again = await store.settle_batch(
            BatchRecord(
                flow="orders",
                dead_letters=[_letter(message_id="m-2"), _letter(message_id="m-3")],
            )
        )
        assert again == [first, first]
        (entry,) = await store.dead_letters(DeadLetterQuery(flow="orders"))
        assert entry.id == first and entry.repeats == 2 and entry.message_id == "m-1"
        assert entry.idempotency_key == "A-1"
        assert [h.get("message_id") for h in entry.history] == [None, "m-2", "m-3"]
        assert [h.get("repeat", False) for h in entry.history] == [False, True, True]
        assert entry.last_failed_at is not None and entry.first_failed_at is not None
        assert entry.last_failed_at >= entry.first_failed_at

    run(store_factory, scenario)


def test_repeats_inside_one_batch_fold_into_the_entry_they_create(
    store_factory: StoreFactory,
) -> None:
    async def scenario(store: Store) -> None:
        ids = await store.settle_batch(
            BatchRecord(
                flow="orders",
                dead_letters=[
                    _letter(),
                    _letter(message_id="m-2", idempotency_key="A-2"),
                    _letter(message_id="m-3"),
                ],
            )
        )
        assert ids[0] == ids[2] != ids[1]
        entries = await store.dead_letters(DeadLetterQuery(flow="orders"))
        assert [(e.idempotency_key, e.repeats) for e in entries] == [("A-1", 1), ("A-2", 0)]

    run(store_factory, scenario)


def test_another_step_reason_flow_or_a_closed_entry_makes_a_new_entry(
    store_factory: StoreFactory,
) -> None:
    async def scenario(store: Store) -> None:
        (first,) = await store.settle_batch(BatchRecord(flow="orders", dead_letters=[_letter()]))
        await store.settle_batch(
            BatchRecord(
                flow="orders",
                dead_letters=[
                    _letter(message_id="m-2", step="validate"),
                    _letter(message_id="m-3", reason="map: field total: not a number"),
                    _letter(message_id="m-4", idempotency_key=None),
                    _letter(message_id="m-5", idempotency_key=None),
                ],
            )
        )
        await store.settle_batch(
            BatchRecord(flow="refunds", dead_letters=[_letter(flow="refunds", message_id="m-6")])
        )
        await store.set_dead_letter_status([first], "discarded")
        await store.settle_batch(
            BatchRecord(flow="orders", dead_letters=[_letter(message_id="m-7")])
        )
        entries = await store.dead_letters(DeadLetterQuery(status=None))
        assert sorted(e.message_id for e in entries) == [f"m-{n}" for n in range(1, 8)]
        assert all(e.repeats == 0 for e in entries)

    run(store_factory, scenario)


def test_messages_are_found_by_their_business_keys(store_factory: StoreFactory) -> None:
    async def scenario(store: Store) -> None:
        await store.settle_batch(
            BatchRecord(
                flow="orders",
                trace_keys=[
                    TraceKey("ORD-1", "m-1"),
                    TraceKey("C-9", "m-1"),
                    TraceKey("ORD-2", "m-2"),
                ],
            )
        )
        # the same message and key again (a replay) is kept once
        await store.settle_batch(
            BatchRecord(
                flow="orders", trace_keys=[TraceKey("ORD-1", "m-1"), TraceKey("ORD-1", "m-3")]
            )
        )
        assert await store.messages_with_key("ORD-1", 10) == ["m-1", "m-3"]
        assert await store.messages_with_key("C-9", 10) == ["m-1"]
        assert await store.messages_with_key("ORD-1", 1) == ["m-1"]
        assert await store.messages_with_key("nope", 10) == []

    run(store_factory, scenario)


def test_a_store_of_the_previous_version_gains_the_columns_and_keys(tmp_path: Path) -> None:
    """A schema-2 file (no repeats, no idempotency-key column) migrates in place: its open
    entries get their idempotency key from their headers and take repeats from then on."""
    path = tmp_path / "state.db"
    connection = sqlite3.connect(path)
    with connection:
        connection.executescript(
            """
            CREATE TABLE dovetail_schema_version (version INTEGER PRIMARY KEY, applied_at FLOAT);
            INSERT INTO dovetail_schema_version VALUES (1, 0), (2, 0);
            CREATE TABLE dovetail_dead_letters (
                id INTEGER PRIMARY KEY AUTOINCREMENT, flow VARCHAR(200) NOT NULL,
                flow_version VARCHAR(50) NOT NULL, message_id VARCHAR(64) NOT NULL,
                correlation_id VARCHAR(128) NOT NULL, step VARCHAR(200) NOT NULL,
                reason TEXT NOT NULL, error_class VARCHAR(200) NOT NULL, attempt INTEGER NOT NULL,
                payload BLOB NOT NULL, headers TEXT NOT NULL, source_position TEXT, detail TEXT,
                status VARCHAR(20) NOT NULL, first_failed_at FLOAT NOT NULL,
                last_failed_at FLOAT NOT NULL, history TEXT NOT NULL);
            """
        )
        connection.execute(
            "INSERT INTO dovetail_dead_letters (flow, flow_version, message_id, correlation_id,"
            " step, reason, error_class, attempt, payload, headers, status, first_failed_at,"
            " last_failed_at, history) VALUES ('orders', '1.0.0', 'm-1', 'c-1', 'map', ?,"
            " 'MappingError', 1, ?, ?, 'open', 1.0, 1.0, '[]')",
            (
                "map: field order_date: invalid date",
                b'j:{"order_id":"A-1"}',
                orjson.dumps({"idempotency-key": "A-1"}).decode(),
            ),
        )
    connection.close()

    async def main() -> list[DeadLetter]:
        store = SqliteStore(path)
        await store.open()
        try:
            await store.settle_batch(
                BatchRecord(flow="orders", dead_letters=[_letter(message_id="m-2")])
            )
            return await store.dead_letters(DeadLetterQuery())
        finally:
            await store.close()

    (entry,) = anyio.run(main)
    assert entry.message_id == "m-1" and entry.idempotency_key == "A-1" and entry.repeats == 1


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["A", "B", None]), st.sampled_from(["map", "lookup"]), st.booleans()
        ),
        max_size=12,
    )
)
def test_folding_keeps_one_entry_per_signature_and_counts_every_letter(
    failures: list[tuple[str | None, str, bool]],
) -> None:
    letters = [
        _letter(message_id=f"m-{n}", idempotency_key=key, step=step, reason=f"{step}: {bad}")
        for n, (key, step, bad) in enumerate(failures)
    ]
    plan = fold_repeats(letters, {}, 0.0)
    keyed = {(le.idempotency_key, le.step, le.reason) for le in letters if le.idempotency_key}
    unkeyed = [le for le in letters if le.idempotency_key is None]
    assert len(plan.inserts) == len(keyed) + len(unkeyed)
    assert sum(1 + new.repeats for new in plan.inserts) == len(letters)
    assert all(len(new.history) == 1 + new.repeats for new in plan.inserts)
    assert len(plan.targets) == len(letters)


def test_a_postgres_store_of_the_previous_version_gains_the_columns_and_keys(
    fresh_postgres_url: str,
) -> None:
    """Schema 4 applied to a PostgreSQL store of schema 3: its open entries get their
    idempotency key from their headers and take repeats from then on."""
    import asyncpg

    from dovetail.store.postgres import PostgresStore

    async def main() -> list[DeadLetter]:
        store = PostgresStore(fresh_postgres_url)
        await store.open()
        await store.settle_batch(BatchRecord(flow="orders", dead_letters=[_letter()]))
        await store.close()
        conn = await asyncpg.connect(fresh_postgres_url)
        try:  # back to schema 3: no key column, no repeats, no trace keys
            await conn.execute(
                "ALTER TABLE dovetail_dead_letters DROP COLUMN idempotency_key,"
                " DROP COLUMN repeats; DROP TABLE dovetail_trace_keys;"
                " DELETE FROM dovetail_schema_version WHERE version = 4;"
                ' UPDATE dovetail_dead_letters SET headers = \'{"idempotency-key": "A-1"}\''
            )
        finally:
            await conn.close()
        store = PostgresStore(fresh_postgres_url)
        await store.open()
        try:
            await store.settle_batch(
                BatchRecord(
                    flow="orders",
                    dead_letters=[_letter(message_id="m-2")],
                    trace_keys=[TraceKey("A-1", "m-2")],
                )
            )
            assert await store.messages_with_key("A-1", 5) == ["m-2"]
            return await store.dead_letters(DeadLetterQuery())
        finally:
            await store.close()

    (entry,) = anyio.run(main)
    assert entry.message_id == "m-1" and entry.idempotency_key == "A-1" and entry.repeats == 1
