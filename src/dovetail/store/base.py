"""The Store protocol and the records it keeps.

Every write that settles messages is a ``BatchRecord`` written in one transaction
(``Store.settle_batch``): dead letters, delivered idempotency keys and journal events are
durable together before the runner acks the source. The runner groups the records that
arrive together (each delivery as its sink confirms it, each batch's remaining settlement)
into one transaction (``group_commit.GroupCommitter``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable


@dataclass(slots=True)
class InboxItem:
    """A message accepted by a source that cannot redeliver (webhook, API call, poll)."""

    id: int
    flow: str
    payload: bytes
    headers: dict[str, str]
    ref: str
    received_at: datetime


@dataclass(slots=True)
class DeadLetter:
    """A message that failed for good, with everything needed to understand and replay it."""

    flow: str
    flow_version: str
    message_id: str
    correlation_id: str
    step: str
    reason: str
    error_class: str
    attempt: int
    payload: Any
    headers: dict[str, str] = field(default_factory=dict)
    source_position: dict[str, Any] | None = None
    detail: str | None = None
    id: int | None = None
    status: str = "open"
    first_failed_at: datetime | None = None
    last_failed_at: datetime | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    idempotency_key: str | None = None
    repeats: int = 0
    """Later messages with the same idempotency key that failed at the same step for the same
    reason while this entry was open, recorded here instead of as entries of their own."""


@dataclass(slots=True)
class TraceKey:
    """A business key of a message (its idempotency key, a ``trace_keys`` value) by which
    ``dovetail trace`` finds it."""

    key: str
    message_id: str


@dataclass(slots=True)
class JournalEvent:
    """One event in a message's journey (received, delivered, filtered, dead_lettered, ...)."""

    message_id: str
    correlation_id: str
    flow: str
    event: str
    step: str | None = None
    detail: dict[str, Any] | None = None
    at: datetime | None = None


@dataclass(slots=True)
class Delivery:
    """An idempotency key delivered to a sink."""

    sink: str
    key: str
    message_id: str


@dataclass(slots=True)
class ParkedMessage:
    """A message waiting in the store for its next delivery attempt at one sink.

    A transient failure whose backoff is longer than ``delivery.retry.park_after`` is parked
    instead of waited for in place: the message is settled upstream (it is durable here), its
    worker moves on, and the flow's retry pump re-sends it to ``sink`` at ``next_attempt_at``.
    ``payload`` is what the sink is sent (the steps already ran); ``original`` is the source's
    message, kept for the dead letter if the retries run out. Messages sharing an ordering key
    or an idempotency key at a sink are re-sent one at a time, oldest first.
    """

    flow: str
    flow_version: str
    sink: str
    message_id: str
    correlation_id: str
    attempt: int
    payload: Any
    original: Any
    next_attempt_at: datetime
    reason: str
    error_class: str
    headers: dict[str, str] = field(default_factory=dict)
    ordering_key: str | None = None
    idempotency_key: str | None = None
    source_position: dict[str, Any] | None = None
    detail: str | None = None
    dead_letter_id: int | None = None
    """Set when the parked message is a replay of this dead letter."""
    id: int | None = None
    first_failed_at: datetime | None = None
    last_failed_at: datetime | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class BatchRecord:
    """Everything one batch settles, written in one transaction."""

    flow: str
    dead_letters: list[DeadLetter] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    journal: list[JournalEvent] = field(default_factory=list)
    replayed: list[int] = field(default_factory=list)
    """Dead-letter ids whose replay was delivered or filtered: marked ``replayed``."""
    parked: list[ParkedMessage] = field(default_factory=list)
    """Messages to park (``id`` None) or to park again (``id`` set: next attempt updated)."""
    unparked: list[int] = field(default_factory=list)
    """Parked entries resolved in this batch (delivered, duplicate or dead-lettered): removed."""
    trace_keys: list[TraceKey] = field(default_factory=list)
    """Business keys of the batch's messages; a key already recorded for a message is kept."""


@dataclass(slots=True)
class DeadLetterQuery:
    """Filters for listing dead letters; every field is optional."""

    flow: str | None = None
    ids: list[int] | None = None
    reason: str | None = None
    status: str | None = "open"
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None
    newest: bool = False
    """With ``limit``: keep the newest entries (still returned oldest first)."""


@dataclass(slots=True)
class KpiRow:
    """One flow's activity over a time window, aggregated in the store (``Store.kpi_rows``).

    Counts come from the journal events in the window, except ``dead_letters_open`` and
    ``parked_now`` (the state now) and the replay figures (dead letters marked ``replayed``
    whose replay settled in the window). Latencies are milliseconds from a message's creation
    (the time in its UUIDv7 id) to each ``delivered`` event.
    """

    flow: str
    messages: int = 0
    """Distinct message ids settled (delivered, filtered, duplicate or dead-lettered)."""
    failed_messages: int = 0
    """Of those, the ones with a ``dead_lettered`` event."""
    delivered: int = 0
    filtered: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    parked: int = 0
    """``parked`` events: a delivery attempt failed and was parked for later (or queued)."""
    retries: int = 0
    """Attempts beyond the first: of the deliveries and of the dead letters in the window."""
    token_renewals: int = 0
    """``token_renewed`` events: a partner answered 401 and the credentials were renewed."""
    dead_letters_open: int = 0
    parked_now: int = 0
    replayed: int = 0
    replay_seconds: float = 0.0
    """Sum over ``replayed`` of the time from the last failure to the replay's settlement."""
    latency_count: int = 0
    latency_mean_ms: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    latency_p99_ms: float | None = None


@runtime_checkable
class Store(Protocol):
    """Durable state shared by a flow's components; SQLite by default, PostgreSQL to scale."""

    url: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def get_checkpoint(self, flow: str, key: str) -> dict[str, Any] | None: ...

    async def put_checkpoint(self, flow: str, key: str, value: dict[str, Any]) -> None: ...

    async def delete_checkpoint(self, flow: str, key: str) -> None: ...

    async def inbox_put(self, flow: str, payload: bytes, headers: dict[str, str], ref: str) -> int:
        """Store an accepted message durably; returns when it is committed."""
        ...

    async def inbox_pending(
        self, flow: str, limit: int, skip: Collection[int] = ()
    ) -> list[InboxItem]:
        """The oldest ``limit`` inbox rows of ``flow`` whose ids are not in ``skip`` (the rows
        a reader already emitted and has not deleted yet), oldest first. Ids are never
        reused, but readers must not rely on ids growing in commit order: a row committed
        late may carry a lower id than one already read."""
        ...

    async def inbox_delete(self, ids: list[int]) -> None:
        """Remove inbox rows whose messages are settled."""
        ...

    async def settle_batch(self, record: BatchRecord) -> list[int]:
        """Write a batch's settlements in one transaction; returns the dead-letter id of each
        of ``record.dead_letters``: new letters first, then replays that failed again.

        A new dead letter whose idempotency key has an open entry of the same flow, step and
        reason (in the store or earlier in the batch) is a repeat: that entry's ``repeats``
        grows by one, its ``last_failed_at`` moves to now and its history gains the failure,
        and its id is returned for the letter.
        """
        ...

    async def delivered_keys(self, flow: str, sink: str, keys: list[str]) -> set[str]:
        """Which of ``keys`` were already delivered to ``sink``."""
        ...

    async def dead_letters(self, query: DeadLetterQuery) -> list[DeadLetter]: ...

    async def set_dead_letter_status(self, ids: list[int], status: str) -> int: ...

    async def journal_for(self, message_or_correlation_id: str) -> list[JournalEvent]: ...

    async def messages_with_key(self, key: str, limit: int) -> list[str]:
        """Ids of the messages recorded with business key ``key`` (``TraceKey``), oldest
        first, at most ``limit``."""
        ...

    async def kpi_rows(self, flow: str | None, since: datetime, until: datetime) -> list[KpiRow]:
        """Per-flow KPI aggregates for ``since <= at < until`` (of one flow or all), computed
        by the database, sorted by flow name."""
        ...

    async def claim_parked(
        self, flow: str, now: datetime, lease: float, limit: int
    ) -> list[ParkedMessage]:
        """Parked messages of ``flow`` due at ``now`` and first in line for their ordering and
        idempotency keys, oldest first; each is leased (its next attempt moved ``lease``
        seconds on) so another process does not take it too."""
        ...

    async def parked_blocking(
        self, flow: str, sink: str, ordering_keys: list[str], idempotency_keys: list[str]
    ) -> tuple[set[str], set[str]]:
        """Which of these ordering keys and idempotency keys have a parked message at ``sink``:
        a new message with one of them must queue behind it."""
        ...

    async def parked(
        self, flow: str | None = None, limit: int | None = None
    ) -> list[ParkedMessage]:
        """Parked messages (of one flow or all), oldest first."""
        ...

    async def parked_count(self, flow: str | None = None) -> int:
        """How many messages are parked (of one flow or all)."""
        ...

    async def forget_deliveries(self, older_than: datetime) -> int:
        """Drop idempotency keys delivered before ``older_than``; returns how many."""
        ...
