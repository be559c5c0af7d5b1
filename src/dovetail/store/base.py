"""The Store protocol and the records it keeps.

Every write that settles messages happens in one transaction per batch
(``Store.settle_batch``): dead letters, delivered idempotency keys and journal events are
durable together before the runner acks the source.
"""

from __future__ import annotations

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
class BatchRecord:
    """Everything one batch settles, written in one transaction."""

    flow: str
    dead_letters: list[DeadLetter] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    journal: list[JournalEvent] = field(default_factory=list)
    replayed: list[int] = field(default_factory=list)
    """Dead-letter ids whose replay was delivered or filtered: marked ``replayed``."""


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

    async def inbox_pending(self, flow: str, after_id: int, limit: int) -> list[InboxItem]:
        """Inbox rows of ``flow`` with id > ``after_id``, oldest first."""
        ...

    async def inbox_delete(self, ids: list[int]) -> None:
        """Remove inbox rows whose messages are settled."""
        ...

    async def settle_batch(self, record: BatchRecord) -> list[int]:
        """Write a batch's settlements in one transaction; returns the new dead-letter ids."""
        ...

    async def delivered_keys(self, flow: str, sink: str, keys: list[str]) -> set[str]:
        """Which of ``keys`` were already delivered to ``sink``."""
        ...

    async def dead_letters(self, query: DeadLetterQuery) -> list[DeadLetter]: ...

    async def set_dead_letter_status(self, ids: list[int], status: str) -> int: ...

    async def journal_for(self, message_or_correlation_id: str) -> list[JournalEvent]: ...

    async def forget_deliveries(self, older_than: datetime) -> int:
        """Drop idempotency keys delivered before ``older_than``; returns how many."""
        ...
