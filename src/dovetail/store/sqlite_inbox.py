"""Group commit for the SQLite inbox: many webhook requests per transaction and fsync.

With ``synchronous=FULL`` every commit waits for the disk, so one commit per request caps
intake at the disk's flush rate. ``InboxGroupCommit.put`` queues its row and, when no flush
is already waiting on the store's thread, submits one; the flush takes every row queued by
then (all that arrived while the previous commit ran) and inserts them in one transaction.
Each caller returns only once the transaction holding ITS row committed (its id), or raises
``StoreError`` when that transaction failed, and so does every other caller in it; callers in
earlier or later transactions are not affected. Deletes of settled rows join the same
transactions, so they cost no disk flush of their own.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from dovetail.errors import StoreError
from dovetail.store.sqlite_thread import Operation, in_transaction, insert_rows, resolve

InboxRow = tuple[str, bytes, str, str, float]
"""``flow, payload, headers (JSON text), ref, received_at``, as the table's columns."""

_INSERT = (
    "INSERT INTO dovetail_inbox (flow, payload, headers, ref, received_at)"
    " VALUES (?, ?, ?, ?, ?) RETURNING id"
)

_DELETE = "DELETE FROM dovetail_inbox WHERE id IN "

_CHUNK = 500
"""Most ids bound into one ``DELETE``."""

_Waiter = tuple[InboxRow | list[int], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]
"""A row to insert (answered with its id) or ids to delete (answered with ``None``)."""


class InboxGroupCommit:
    """Batches concurrent inbox writes into one transaction each (see the module docstring).

    ``submit`` runs an operation on the store's thread (the store's ``_run``); ``url`` names
    the store in errors. ``commits`` and ``rows`` count the transactions committed and the
    rows they inserted (statistics: ``rows / commits`` is the mean group size).
    """

    def __init__(self, submit: Callable[[Operation[None]], Awaitable[None]], url: str) -> None:
        self._submit = submit
        self._url = url
        self._lock = threading.Lock()
        self._waiting: list[_Waiter] = []
        self._flush_queued = False
        self.commits = 0
        self.rows = 0

    @property
    def queued(self) -> int:
        """Writes waiting for their commit now (a statistic)."""
        with self._lock:
            return len(self._waiting)

    async def put(self, row: InboxRow) -> int:
        """Store ``row`` durably; returns its id once its transaction committed. Raises
        ``StoreError`` when that transaction failed (nothing of it was kept)."""
        return int(await self._join(row))

    async def delete(self, ids: list[int]) -> None:
        """Delete the rows ``ids`` in the next transaction (with the rows being put then);
        returns once it committed, raises ``StoreError`` when it failed."""
        await self._join(list(ids))

    async def _join(self, work: InboxRow | list[int]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            self._waiting.append((work, loop, future))
            leader = not self._flush_queued
            self._flush_queued = True
        if leader:
            try:
                await self._submit(self._flush)
            except asyncio.CancelledError:
                raise  # the flush is queued all the same and answers the others
            except BaseException as exc:
                self._fail_waiting(exc)  # ``_flush`` never raises: it was never queued
        return await future

    def _flush(self, connection: sqlite3.Connection) -> None:
        """On the store's thread: commit every queued write in one transaction, answer each."""
        with self._lock:
            batch, self._waiting = self._waiting, []
            self._flush_queued = False
        if not batch:
            return
        rows = [work for work, _, _ in batch if isinstance(work, tuple)]
        gone = [row_id for work, _, _ in batch if isinstance(work, list) for row_id in work]

        def write(c: sqlite3.Connection) -> list[int]:
            # AUTOINCREMENT hands the rows ascending ids in insertion order
            ids = sorted(r[0] for r in insert_rows(c, _INSERT, rows))
            for start in range(0, len(gone), _CHUNK):
                chunk = gone[start : start + _CHUNK]
                c.execute(f"{_DELETE}({', '.join('?' * len(chunk))})", chunk)
            return ids

        try:
            ids = in_transaction(connection, write)
            if len(ids) != len(rows):
                raise StoreError(f"inbox insert returned {len(ids)} ids for {len(rows)} rows")
        except BaseException as exc:
            error = _store_error(exc, self._url)
            for _, loop, future in batch:
                resolve(loop, future, False, error)
            return
        self.commits += 1
        self.rows += len(rows)
        new_ids = iter(ids)
        for work, loop, future in batch:
            resolve(loop, future, True, int(next(new_ids)) if isinstance(work, tuple) else None)

    def _fail_waiting(self, exc: BaseException) -> None:
        with self._lock:
            batch, self._waiting = self._waiting, []
            self._flush_queued = False
        error = _store_error(exc, self._url)
        for _, loop, future in batch:
            resolve(loop, future, False, error)


def _store_error(exc: BaseException, url: str) -> BaseException:
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, sqlite3.Error):
        return StoreError(f"store {url}: {exc}")
    return exc
