"""The durable settlement write of a batch, which neither a bad message nor an outage can break.

``SettlementWriter.write`` hands a batch's ``BatchRecord`` to ``Store.settle_batch`` (one
transaction) and returns once it is durable; only then does the runner acknowledge the batch.

- **The store refuses the data** (a text the database cannot hold, a value too long for its
  column, a number out of range: ``is_data_error``): the batch is written again message by
  message, so every other message settles; a message the store still refuses is written in a
  *safe form* — its dead letter keeps the failure and gets the payload as text (``repr``), text
  fields cleaned of what the database refuses and cut to their column's length, and a reason
  saying why; a parked message that cannot be stored becomes such a dead letter; a delivered
  idempotency key that cannot be stored is left out (logged); journal details are cleaned.
- **The store is unavailable** (anything else: connection refused, disk full, locked): the
  same write is tried again after a backoff (0.5 s doubling to 30 s), for as long as it takes;
  the batch's messages stay unacknowledged meanwhile and the flow waits (back-pressure). A
  stop's drain deadline cancels the wait: the messages are then read again on the next start.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from typing import Any

import structlog

from dovetail.delivery.clock import Clock, SystemClock
from dovetail.store.base import BatchRecord, DeadLetter, JournalEvent, ParkedMessage, Store
from dovetail.store.codec import UnstorableValue, encode_json, storable_text

log = structlog.get_logger("dovetail.settlement")

_DATA_ERRORS: tuple[type[BaseException], ...] = (
    TypeError,
    ValueError,  # UnicodeEncodeError, UnstorableValue
    OverflowError,
    sqlite3.DataError,
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
)
_DATA_SQLSTATES = ("22", "23")
"""SQLSTATE classes of data exceptions and integrity constraint violations."""

_SAFE_PAYLOAD_BYTES = 1_048_576
_LIMITS = {"message_id": 64, "correlation_id": 128, "step": 200, "error_class": 200}
_LIMITS |= {"flow_version": 50, "sink": 200, "key": 500}
"""Column lengths of the store's schema (``store/schema.py``) a safe form must fit."""


@dataclass(frozen=True)
class SettlementBackoff:
    """Waits between attempts at a settlement write while the store is unavailable."""

    initial: float = 0.5
    maximum: float = 30.0

    def next_wait(self, previous: float | None) -> float:
        """The wait after a failed attempt, given the previous wait (``None``: first)."""
        return self.initial if previous is None else min(previous * 2, self.maximum)


def is_data_error(exc: BaseException) -> bool:
    """True when the store refused the values written, not when it could not be reached."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, _DATA_ERRORS):
            return True
        state = getattr(error, "sqlstate", None)
        if isinstance(state, str) and state.startswith(_DATA_SQLSTATES):
            return True
        orig = getattr(error, "orig", None)  # SQLAlchemy's wrapper of the driver's error
        pending.extend([error.__cause__, orig if isinstance(orig, BaseException) else None])
    return False


class SettlementWriter:
    """Writes the settlement of one flow's batches (module docstring); never raises for a
    message's data, and retries a store outage until the write is durable."""

    def __init__(
        self,
        store: Store,
        flow: str,
        *,
        clock: Clock | None = None,
        backoff: SettlementBackoff = SettlementBackoff(),
    ) -> None:
        self._store = store
        self._flow = flow
        self._clock = clock or SystemClock()
        self._backoff = backoff

    async def write(self, record: BatchRecord) -> None:
        """Make ``record`` durable; messages the store refuses are stored in a safe form."""
        try:
            await self._durably(record)
        except _Refused as refused:
            log.warning(
                "settlement refused by the store; writing its messages one by one",
                flow=self._flow,
                error=_describe(refused.error),
            )
            for part in split_by_message(record):
                if part.dead_letters or part.deliveries or part.journal or part.parked:
                    await self._write_part(part)
                elif part.replayed or part.unparked:
                    await self._durably(part)

    async def _write_part(self, part: BatchRecord) -> None:
        try:
            await self._durably(part)
        except _Refused as refused:
            safe = safe_record(part, _describe(refused.error))
            log.error(
                "message refused by the store; stored in a safe form",
                flow=self._flow,
                message_ids=sorted({e.message_id for e in part.journal}),
                error=_describe(refused.error),
            )
            try:
                await self._durably(safe)
            except _Refused as again:  # the safe form refused too: a bug, the flow stops
                raise again.error from refused.error

    async def _durably(self, record: BatchRecord) -> None:
        """One ``settle_batch``, tried again while the store is unavailable."""
        wait: float | None = None
        while True:
            try:
                await self._store.settle_batch(record)
                return
            except Exception as exc:
                if is_data_error(exc):
                    raise _Refused(exc) from exc
                wait = self._backoff.next_wait(wait)
                log.warning(
                    "store unavailable; the settlement is tried again, its messages unacked",
                    flow=self._flow,
                    error=_describe(exc),
                    in_seconds=wait,
                )
            await self._clock.sleep(wait)


class _Refused(Exception):
    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def split_by_message(record: BatchRecord) -> list[BatchRecord]:
    """``record`` as one record per message (in order), plus one for the batch-wide marks."""
    parts: dict[str, BatchRecord] = {}

    def part(message_id: str) -> BatchRecord:
        return parts.setdefault(message_id, BatchRecord(flow=record.flow))

    for letter in record.dead_letters:
        part(letter.message_id).dead_letters.append(letter)
    for delivery in record.deliveries:
        part(delivery.message_id).deliveries.append(delivery)
    for parked in record.parked:
        part(parked.message_id).parked.append(parked)
    for event in record.journal:
        part(event.message_id).journal.append(event)
    marks = BatchRecord(flow=record.flow, replayed=record.replayed, unparked=record.unparked)
    return [marks, *parts.values()]


def safe_record(part: BatchRecord, error: str) -> BatchRecord:
    """The safe form of one message's settlement (module docstring)."""
    note = f"stored in a safe form, the store refused it: {error}"
    letters = [_safe_letter(letter, note) for letter in part.dead_letters]
    letters += [_parked_as_letter(parked, note) for parked in part.parked]
    kept = [d for d in part.deliveries if _fits(d.key, "key") and _fits(d.sink, "sink")]
    for dropped in part.deliveries:
        if dropped not in kept:
            log.warning(
                "idempotency key not recorded: the store cannot hold it",
                flow=part.flow,
                sink=safe_text(dropped.sink, "sink"),
                message_id=dropped.message_id,
            )
    journal = [_safe_event(event) for event in part.journal]
    unparked = [*part.unparked, *(p.id for p in part.parked if p.id is not None)]
    return BatchRecord(
        flow=part.flow,
        dead_letters=letters,
        deliveries=kept,
        journal=journal,
        replayed=list(part.replayed),
        unparked=unparked,
    )


def safe_text(text: str, field: str | None = None) -> str:
    """``text`` without what a database refuses (lone surrogates, NUL), within ``field``'s
    column length."""
    cleaned = storable_text(text)
    limit = _LIMITS.get(field or "")
    return cleaned if limit is None else cleaned[:limit]


def safe_value(value: Any) -> Any:
    """``value`` as data the codec stores (text for what it cannot); texts cleaned."""
    try:
        encode_json(value)
    except UnstorableValue:
        return "<value nested too deeply to store>"
    return _cleaned(value, 0)


def safe_payload(value: Any) -> bytes:
    """A payload the store refused, as text bytes (its ``repr``, at most 1 MiB)."""
    try:
        text = repr(value)
    except RecursionError:
        text = "<payload nested too deeply to show>"
    return text.encode("utf-8", "backslashreplace")[:_SAFE_PAYLOAD_BYTES]


def _cleaned(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return safe_text(value)
    if depth > 64:
        return safe_text(repr(value)[:1000])
    if isinstance(value, dict):
        return {safe_text(str(k)): _cleaned(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cleaned(item, depth + 1) for item in value]
    return value


def _fits(text: str, field: str) -> bool:
    return safe_text(text, field) == text


def _safe_letter(letter: DeadLetter, note: str) -> DeadLetter:
    return replace(
        letter,
        flow_version=safe_text(letter.flow_version, "flow_version"),
        message_id=safe_text(letter.message_id, "message_id"),
        correlation_id=safe_text(letter.correlation_id, "correlation_id"),
        step=safe_text(letter.step, "step"),
        reason=safe_text(f"{letter.reason} ({note})"),
        error_class=safe_text(letter.error_class, "error_class"),
        attempt=min(max(letter.attempt, 0), 2**31 - 1),
        payload=safe_payload(letter.payload),
        headers={safe_text(str(k)): safe_text(str(v)) for k, v in letter.headers.items()},
        source_position=None
        if letter.source_position is None
        else safe_value(letter.source_position),
        detail=None if letter.detail is None else safe_text(letter.detail),
        history=safe_value(letter.history),
    )


def _parked_as_letter(parked: ParkedMessage, note: str) -> DeadLetter:
    letter = DeadLetter(
        flow=parked.flow,
        flow_version=parked.flow_version,
        message_id=parked.message_id,
        correlation_id=parked.correlation_id,
        step=f"sink:{parked.sink}",
        reason=f"could not be parked for a later attempt: {parked.reason}",
        error_class=parked.error_class,
        attempt=parked.attempt,
        payload=parked.original,
        headers=dict(parked.headers),
        source_position=parked.source_position,
        detail=parked.detail,
        id=parked.dead_letter_id,
        first_failed_at=parked.first_failed_at,
        history=list(parked.history),
    )
    return _safe_letter(letter, note)


def _safe_event(event: JournalEvent) -> JournalEvent:
    return replace(
        event,
        message_id=safe_text(event.message_id, "message_id"),
        correlation_id=safe_text(event.correlation_id, "correlation_id"),
        step=None if event.step is None else safe_text(event.step, "step"),
        detail=None if event.detail is None else safe_value(event.detail),
    )


def _describe(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return safe_text(f"{type(exc).__name__}: {first}" if first else type(exc).__name__)[:500]
