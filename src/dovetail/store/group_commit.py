"""Group commit: many settlement records, one store transaction, as soon as possible.

A flow confirms deliveries one at a time (each request its partner answers) and settles
batches; writing each confirmation in its own transaction would cost an fsync per message,
waiting for the whole batch would leave every confirmed message unrecorded until its slowest
neighbour is done. ``GroupCommitter.write`` does neither: the first caller with nothing being
committed commits its record at once; records that arrive while that commit runs accumulate and
go together in the next transaction. Under load, each transaction carries whatever arrived
during the previous one; when idle, a record is committed without waiting.

``write`` returns once the record is durable (or raises the store's error); there is no
background task: the callers take turns at being the one that commits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields

import anyio

from dovetail.errors import StoreError
from dovetail.store.base import BatchRecord, Store


@dataclass(slots=True)
class _Ticket:
    record: BatchRecord
    done: anyio.Event = field(default_factory=anyio.Event)
    error: BaseException | None = None


_LISTS = tuple(f.name for f in fields(BatchRecord) if f.name != "flow")
"""Every list a ``BatchRecord`` holds: all of them are merged, so none can be forgotten."""


def merge_records(flow: str, records: list[BatchRecord]) -> BatchRecord:
    """One record holding every entry of ``records``, in their order."""
    merged = BatchRecord(flow=flow)
    for record in records:
        for name in _LISTS:
            getattr(merged, name).extend(getattr(record, name))
    return merged


Commit = Callable[[BatchRecord], Awaitable[object]]
"""Writes one record durably in one transaction (``Store.settle_batch`` or a wrapper of it)."""


class GroupCommitter:
    """Writes one flow's settlement records to ``store``, grouping those that arrive together."""

    def __init__(self, store: Store, flow: str, commit: Commit | None = None) -> None:
        self.store = store
        self.flow = flow
        self._commit = commit or store.settle_batch
        self.transactions = 0
        """Store transactions run so far."""
        self.records = 0
        """Records written so far (``records / transactions``: the grouping achieved)."""
        self._pending: list[_Ticket] = []
        self._committing = False
        self._idle = anyio.Event()

    async def write(self, record: BatchRecord) -> None:
        """Return once ``record`` is committed, together with whatever else was waiting.

        A record with no entries has nothing to make durable: it returns at once, without a
        transaction. Raises ``StoreError`` (or the store's error) when its transaction failed.
        """
        if not any(getattr(record, name) for name in _LISTS):
            return
        ticket = _Ticket(record)
        self._pending.append(ticket)
        while not ticket.done.is_set():
            if self._committing:
                await self._idle.wait()
            else:
                await self._commit_pending()
        if ticket.error is not None:
            raise ticket.error

    async def _commit_pending(self) -> None:
        tickets, self._pending = self._pending, []
        self._committing = True
        self._idle = anyio.Event()
        try:
            await self._commit(merge_records(self.flow, [t.record for t in tickets]))
        except BaseException as exc:
            failure = exc if isinstance(exc, Exception) else None
            for ticket in tickets:
                ticket.error = failure or StoreError("the settlement commit was interrupted")
                ticket.done.set()
            raise
        else:
            self.transactions += 1
            self.records += len(tickets)
            for ticket in tickets:
                ticket.done.set()
        finally:
            self._committing = False
            self._idle.set()
