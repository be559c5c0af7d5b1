"""Parking long retry waits in the store instead of holding a worker.

When a message's next wait is longer than ``delivery.retry.park_after``, the sink delivery
parks it: the message is written to the store with its ``next_attempt_at`` in the batch's
settlement transaction, acked upstream like a dead letter (it is durable), and the worker goes
on with the next batch. The runner's retry pump claims due messages and sends them to the sink
that failed them, continuing their attempt count; a message that runs out of attempts becomes
a dead letter with the history of every attempt.

Keys stay in order: while a message is parked at a sink, later messages with the same ordering
key or idempotency key queue behind it in the store (they are parked too, due at once), and
the pump only takes the oldest parked message of each key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from dovetail.core.ack import Settlement
from dovetail.core.delivery import Parked as Parked
from dovetail.core.envelope import Envelope, SourcePosition
from dovetail.store.base import ParkedMessage, Store

IDEMPOTENCY_HEADER = "idempotency-key"
ORDERING_HEADER = "x-dovetail-ordering-key"

LEASE_SECONDS = 120.0
"""How long a claimed message is hidden from other pumps while it is re-sent; after a crash
it is sent again once the lease has run out (idempotency keys absorb a repeat)."""

POLL_SECONDS = 1.0
"""How often the pump looks for due messages while the flow runs."""

QUEUED_REASON = "queued behind a parked message with the same key"


class ParkingLot:
    """The flow's view of its parked messages: whether any exist, and which keys they hold."""

    def __init__(self, store: Store, flow: str, park_after: float) -> None:
        self.store = store
        self.flow = flow
        self.park_after = park_after
        self.active = True
        """False only when the store was seen to hold no parked message of the flow; then
        new messages skip the store lookup of parked keys."""
        self._pending = 0
        self._changes = 0

    def parking(self, count: int) -> None:
        """``count`` messages are being parked (not yet committed)."""
        self._pending += count
        self._changes += 1
        self.active = True

    def committed(self, count: int) -> None:
        """``count`` parked messages were committed to the store."""
        self._pending -= count
        self._changes += 1

    async def refresh(self) -> int:
        """Count the flow's parked messages and update ``active``; returns the count.

        ``active`` stays true when a park was under way or committed while counting.
        """
        changes, pending = self._changes, self._pending
        count = await self.store.parked_count(self.flow)
        self.active = count > 0 or pending > 0 or self._pending > 0 or changes != self._changes
        return count

    async def blocked(self, sink: str, batch: Sequence[Envelope]) -> set[int]:
        """Positions in ``batch`` of messages whose ordering or idempotency key has a message
        parked at ``sink``: they must queue behind it."""
        if not self.active:
            return set()
        ordering = sorted({k for e in batch if (k := e.headers.get(ORDERING_HEADER))})
        idempotency = sorted({k for e in batch if (k := e.headers.get(IDEMPOTENCY_HEADER))})
        if not ordering and not idempotency:
            return set()
        held_order, held_keys = await self.store.parked_blocking(
            self.flow, sink, ordering, idempotency
        )
        return {
            index
            for index, envelope in enumerate(batch)
            if envelope.headers.get(ORDERING_HEADER) in held_order
            or envelope.headers.get(IDEMPOTENCY_HEADER) in held_keys
        }


def parked_message(
    envelope: Envelope,
    *,
    flow: str,
    flow_version: str,
    sink: str,
    due: datetime,
    previous: ParkedMessage | None,
) -> ParkedMessage:
    """The store record of ``envelope`` parked at ``sink``; ``previous`` is its entry when it
    was parked before (then the entry is updated and its history kept)."""
    failure = envelope.failure
    reason = failure.reason if failure is not None else QUEUED_REASON
    return ParkedMessage(
        id=None if previous is None else previous.id,
        flow=flow,
        flow_version=flow_version,
        sink=sink,
        message_id=envelope.id,
        correlation_id=envelope.correlation_id,
        attempt=envelope.attempt if failure is not None else 0,
        payload=envelope.payload,
        original=envelope.original if envelope.original is not None else envelope.payload,
        next_attempt_at=due,
        reason=reason,
        error_class=failure.error_class if failure is not None else "Queued",
        detail=None if failure is None else failure.detail,
        headers=dict(envelope.headers),
        ordering_key=envelope.headers.get(ORDERING_HEADER),
        idempotency_key=envelope.headers.get(IDEMPOTENCY_HEADER),
        source_position=None if envelope.position is None else envelope.position.as_dict(),
        dead_letter_id=envelope.dead_letter_id,
        first_failed_at=None if previous is None else previous.first_failed_at,
        history=[] if previous is None else list(previous.history),
    )


def envelope_of(message: ParkedMessage) -> Envelope:
    """The envelope that re-sends a parked message to its sink (the steps already ran)."""
    position = SourcePosition.from_dict(message.source_position, "parked")
    return Envelope(
        payload=message.payload,
        settlement=Settlement(),
        id=message.message_id,
        correlation_id=message.correlation_id,
        headers=dict(message.headers),
        position=position,
        attempt=message.attempt,
        original=message.original,
        routes=(message.sink,),
        dead_letter_id=message.dead_letter_id,
        parked_id=message.id,
    )
