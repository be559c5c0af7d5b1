"""Group commit of inbox rows on the event loop: concurrent writes of rows share one transaction.

``GroupCommit(write).put(row)`` queues ``row``. When no write is under way the caller becomes
the writer: it writes every queued row with one ``write(rows)`` call (one transaction, which
returns the rows' ids in order) and answers each of their callers; rows queued meanwhile are
written next by the first of their callers, which is handed the writer's part. So a caller
returns only once the transaction holding ITS row committed, or raises what that write
raised, as does every other caller in it; nobody writes for more than one round.

A writer's round is shielded from anyio cancellation; a writer cancelled all the same (a
native ``Task.cancel``) fails the other callers of its round with ``StoreError`` (nothing of
them was acknowledged, so they can answer a retryable error) and hands the writer's part on,
so no caller is ever left waiting. Used by the SQL store's inbox (``sql.py``); the SQLite
store batches on its own thread instead (``sqlite_inbox.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Generic, TypeVar

import anyio

from dovetail.errors import StoreError

Row = TypeVar("Row")

_LEAD: Final = object()
"""What a waiting caller's future is set to when it becomes the writer."""


class GroupCommit(Generic[Row]):
    """Batches concurrent ``put`` calls into one ``write`` each (see the module docstring).

    ``commits`` and ``rows`` count the writes that succeeded and the rows they held.
    """

    def __init__(self, write: Callable[[list[Row]], Awaitable[Sequence[int]]]) -> None:
        self._write = write
        self._waiting: list[tuple[Row, asyncio.Future[Any]]] = []
        self._writing = False
        self.commits = 0
        self.rows = 0

    async def put(self, row: Row) -> int:
        """Write ``row`` in the next transaction; its id once that committed (or the
        write's exception)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((row, future))
        if not self._writing:
            self._writing = True
            future.set_result(_LEAD)
        try:
            result = await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.result() is _LEAD:
                self._hand_over()  # cancelled just as it became the writer
            raise
        if result is not _LEAD:
            return int(result)
        with anyio.CancelScope(shield=True):
            new_id = await self._write_round(future)
        return new_id  # noqa: RET504 (a context manager may swallow: mypy needs it here)

    async def _write_round(self, own: asyncio.Future[Any]) -> int:
        """As the writer: write every queued row (``own`` is the writer's), answer the other
        callers, hand the writer's part over; the writer's own id (or the write's error)."""
        batch, self._waiting = self._waiting, []
        try:
            ids = list(await self._write([row for row, _ in batch]))
            if len(ids) != len(batch):
                raise RuntimeError(f"the write returned {len(ids)} ids for {len(batch)} rows")
        except BaseException as exc:
            error = exc if isinstance(exc, Exception) else StoreError("the write was interrupted")
            for _, future in batch:
                if future is not own and not future.done():
                    future.set_exception(error)
            raise
        finally:
            self._hand_over()
        self.commits += 1
        self.rows += len(batch)
        mine = 0
        for (_, future), new_id in zip(batch, ids, strict=True):
            if future is own:
                mine = int(new_id)
            elif not future.done():
                future.set_result(int(new_id))
        return mine

    def _hand_over(self) -> None:
        """Make the first caller still waiting the writer, or stop writing."""
        while self._waiting:
            _, future = self._waiting[0]
            if not future.done():
                future.set_result(_LEAD)
                return
            self._waiting.pop(0)  # its caller is gone and was never answered
        self._writing = False
