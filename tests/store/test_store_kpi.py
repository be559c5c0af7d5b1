"""``Store.kpi_rows``: per-flow aggregates computed by the database, on every backend."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from dovetail.store.base import (
    BatchRecord,
    DeadLetter,
    DeadLetterQuery,
    JournalEvent,
    KpiRow,
    ParkedMessage,
    Store,
)

StoreFactory = Callable[[], Store]


def uuid7_at(at: datetime, serial: int) -> str:
    """A UUIDv7 whose timestamp is ``at`` (ms), made unique by ``serial``."""
    text = f"{int(at.timestamp() * 1000):012x}7{serial:03x}8{serial:015x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def event(
    message: str, kind: str, at: datetime, flow: str = "orders", **detail: object
) -> JournalEvent:
    return JournalEvent(
        message_id=message,
        correlation_id=f"c-{message}",
        flow=flow,
        event=kind,
        step="sink:erp",
        detail=dict(detail) or None,
        at=at,
    )


def letter(message: str, attempt: int, flow: str = "orders") -> DeadLetter:
    return DeadLetter(
        flow=flow,
        flow_version="1.0.0",
        message_id=message,
        correlation_id=f"c-{message}",
        step="sink:erp",
        reason="HTTP 422",
        error_class="PartnerRejected",
        attempt=attempt,
        payload={"order_id": message},
    )


def run(factory: StoreFactory, scenario: Callable[[Store], object]) -> None:
    async def main() -> None:
        store = factory()
        await store.open()
        try:
            await scenario(store)  # type: ignore[misc]
        finally:
            await store.close()

    anyio.run(main)


def test_an_empty_store_has_no_rows(store_factory: StoreFactory) -> None:
    async def scenario(store: Store) -> None:
        now = datetime.now(UTC)
        assert await store.kpi_rows(None, now - timedelta(days=1), now) == []
        assert await store.kpi_rows("orders", now - timedelta(days=1), now) == []

    run(store_factory, scenario)


def test_kpi_rows_aggregate_a_known_history(store_factory: StoreFactory) -> None:
    async def scenario(store: Store) -> None:
        now = datetime.now(UTC)
        t0 = (now - timedelta(minutes=10)).replace(microsecond=0)
        journal = [
            event(
                uuid7_at(t0, i),
                "delivered",
                t0 + timedelta(milliseconds=100 * i),
                attempt=3 if i == 2 else 1,
                position="list#1",
            )
            for i in range(1, 11)
        ]
        journal += [
            event("m-x", "delivered", t0, attempt=1),  # not a UUIDv7: no latency
            event(uuid7_at(t0, 11), "filtered", t0),
            event(uuid7_at(t0, 12), "duplicate_skipped", t0),
            event(uuid7_at(t0, 13), "dead_lettered", t0, reason="HTTP 422"),
            event(uuid7_at(t0, 14), "parked", t0, attempt=1, reason="HTTP 503"),
            event(uuid7_at(t0, 15), "delivered", t0 - timedelta(days=2), attempt=5),  # outside
            event(uuid7_at(t0, 16), "delivered", t0, flow="billing", attempt=1),
        ]
        await store.settle_batch(BatchRecord(flow="orders", journal=journal))
        _, replayed_id = await store.settle_batch(
            BatchRecord(
                flow="orders",
                dead_letters=[letter(uuid7_at(t0, 13), 4), letter("r-1", 1)],
                parked=[
                    ParkedMessage(
                        flow="orders",
                        flow_version="1.0.0",
                        sink="erp",
                        message_id=uuid7_at(t0, 14),
                        correlation_id="c-p",
                        attempt=1,
                        payload={},
                        original={},
                        next_attempt_at=now + timedelta(minutes=5),
                        reason="HTTP 503",
                        error_class="PartnerUnavailable",
                    )
                ],
            )
        )
        (replayed,) = await store.dead_letters(DeadLetterQuery(ids=[replayed_id]))
        assert replayed.message_id == "r-1" and replayed.last_failed_at is not None
        # the replay: a new message, same correlation id, settled 5 s after the last failure
        replay = JournalEvent(
            message_id="r-2",
            correlation_id="c-r-1",
            flow="orders",
            event="delivered",
            step="sink:erp",
            detail={"attempt": 1},
            at=replayed.last_failed_at + timedelta(seconds=5),
        )
        await store.settle_batch(
            BatchRecord(flow="orders", journal=[replay], replayed=[replayed_id])
        )

        since, until = now - timedelta(hours=1), now + timedelta(hours=1)
        rows = await store.kpi_rows(None, since, until)
        assert [r.flow for r in rows] == ["billing", "orders"]
        orders = rows[1]
        assert orders.replay_seconds == pytest.approx(5.0, abs=1e-3)
        orders.replay_seconds = 5.0
        assert orders == KpiRow(
            flow="orders",
            messages=15,
            failed_messages=1,
            delivered=12,
            filtered=1,
            duplicates=1,
            dead_lettered=1,
            parked=1,
            retries=2 + 3,
            dead_letters_open=1,
            parked_now=1,
            replayed=1,
            replay_seconds=5.0,
            latency_count=10,
            latency_mean_ms=orders.latency_mean_ms,
            latency_p50_ms=500.0,
            latency_p95_ms=1000.0,
            latency_p99_ms=1000.0,
        )
        assert orders.latency_mean_ms == pytest.approx(550.0)
        (billing,) = await store.kpi_rows("billing", since, until)
        assert (billing.messages, billing.delivered, billing.dead_letters_open) == (1, 1, 0)
        later = await store.kpi_rows("orders", now + timedelta(hours=2), now + timedelta(hours=3))
        assert [(r.messages, r.dead_letters_open, r.parked_now) for r in later] == [(0, 1, 1)]

    run(store_factory, scenario)
