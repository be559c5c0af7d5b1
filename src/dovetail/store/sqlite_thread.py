"""A dedicated thread that owns one stdlib ``sqlite3`` connection and runs whole operations.

SQLite calls block, so they belong on a thread; what costs is each hop between the event loop
and that thread. ``SqliteThread.run`` hands over one complete operation (a function of the
connection: a transaction from ``BEGIN`` to ``COMMIT``, or a query with its fetch) and awaits
its result, so an operation is one hop however many statements it runs.

Operations run one at a time, in the order they were submitted, on the thread that opened the
connection. A caller that is cancelled while its operation runs stops waiting, but the operation
still runs to its end (it commits or rolls back as written): the connection is never left in
the middle of a transaction. ``in_transaction`` wraps a body in ``BEGIN IMMEDIATE`` ... ``COMMIT``
with a rollback on any failure.

Inside an operation, each statement still hands the GIL over (SQLite runs without it) and waits
to get it back, which takes a while when the event loop is busy; ``insert_rows`` therefore puts
many rows in each statement instead of running one statement per row.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

Operation = Callable[[sqlite3.Connection], T]
"""Work for the thread: runs with the connection, returns a result or raises."""

_Job = tuple[
    Callable[[sqlite3.Connection], Any] | None, asyncio.AbstractEventLoop, "asyncio.Future[Any]"
]
"""An operation (``None`` to stop), the loop of its caller and the future it waits on."""


class SqliteThread:
    """One thread, one connection; ``run`` executes operations on it one after another.

    ``start`` opens the connection on the thread (raising what ``connect`` raises), ``stop``
    closes it after the operations already submitted. Safe to ``run`` from several tasks (and
    several event loops) at once; the operations queue up.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._starting = asyncio.Lock()

    @property
    def running(self) -> bool:
        """True between a successful ``start`` and ``stop``."""
        return self._thread is not None

    async def start(self, connect: Callable[[], sqlite3.Connection]) -> None:
        """Start the thread and open its connection with ``connect``; raises its error.
        Does nothing when already started; concurrent calls start one thread."""
        async with self._starting:
            if self._thread is not None:
                return
            loop = asyncio.get_running_loop()
            ready: asyncio.Future[None] = loop.create_future()
            thread = threading.Thread(
                target=self._serve, args=(connect, loop, ready), name=self.name, daemon=True
            )
            thread.start()
            try:
                await asyncio.shield(ready)
            except BaseException:
                if not ready.done() or ready.cancelled() or ready.exception() is None:
                    # cancelled while connecting: the thread serves on, so stop it
                    self._jobs.put((None, loop, loop.create_future()))
                thread.join()
                raise
            self._thread = thread

    async def run(self, operation: Operation[T]) -> T:
        """Run ``operation(connection)`` on the thread and return its result (or raise)."""
        if self._thread is None:
            raise RuntimeError(f"{self.name}: the SQLite connection is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((operation, loop, future))
        return await future

    async def stop(self) -> None:
        """Close the connection once the submitted operations have run; end the thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        loop = asyncio.get_running_loop()
        closed: asyncio.Future[None] = loop.create_future()
        self._jobs.put((None, loop, closed))
        await closed
        thread.join()

    def _serve(
        self,
        connect: Callable[[], sqlite3.Connection],
        loop: asyncio.AbstractEventLoop,
        ready: asyncio.Future[None],
    ) -> None:
        try:
            connection = connect()
        except BaseException as exc:
            resolve(loop, ready, False, exc)
            return
        resolve(loop, ready, True, None)
        while True:
            operation, job_loop, future = self._jobs.get()
            if operation is None:
                try:
                    connection.close()
                except BaseException as exc:
                    resolve(job_loop, future, False, exc)
                else:
                    resolve(job_loop, future, True, None)
                return
            try:
                result = operation(connection)
            except BaseException as exc:
                resolve(job_loop, future, False, exc)
            else:
                resolve(job_loop, future, True, result)


def in_transaction(connection: sqlite3.Connection, body: Operation[T]) -> T:
    """``body(connection)`` inside ``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back if anything
    fails (the commit included). The write lock is taken up front, waiting up to the
    connection's busy timeout, so a writer never fails half-way for want of the lock."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = body(connection)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.rollback()
        raise
    return result


def insert_rows(
    connection: sqlite3.Connection, sql: str, rows: Sequence[Sequence[Any]]
) -> list[Any]:
    """Run the one-row ``INSERT ... VALUES (?, ...) [ON CONFLICT ...]`` ``sql`` for every row,
    in order, as a few multi-row statements.

    ``executemany`` steps the statement once per row, and each step hands the GIL back and
    forth: when the event loop is busy, every row waits for its turn. A statement of many rows
    binds them all, then runs without the GIL. Statements hold 2**k rows (at most
    ``_MAX_ROWS``, within SQLite's limit on bound values), so each shape is prepared once and
    then found in the connection's statement cache. Returns what a ``RETURNING`` clause gives,
    in no particular order.
    """
    returned: list[Any] = []
    if not rows:
        return returned
    width = len(rows[0])
    fit = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width
    size = 1 << (max(1, min(_MAX_ROWS, fit)).bit_length() - 1)
    start, total = 0, len(rows)
    while start < total:
        while total - start < size:
            size >>= 1
        chunk = rows[start : start + size]
        cursor = connection.execute(
            _multi_row_sql(sql, width, size), list(itertools.chain.from_iterable(chunk))
        )
        returned.extend(cursor.fetchall())
        start += size
    return returned


_MAX_ROWS = 256
"""Most rows in one statement."""


@functools.lru_cache(maxsize=512)
def _multi_row_sql(sql: str, width: int, count: int) -> str:
    """``sql`` with its ``VALUES (?, ...)`` repeated for ``count`` rows."""
    if count == 1:
        return sql
    group = "(" + ", ".join("?" * width) + ")"
    head, values, tail = sql.partition(f" VALUES {group}")
    if not values:
        raise ValueError(f"not a one-row INSERT with {width} values: {sql[:60]}")
    return f"{head} VALUES {', '.join([group] * count)}{tail}"


def resolve(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], ok: bool, value: Any
) -> None:
    """From the thread: settle ``future`` on its ``loop`` with ``value`` (a result when
    ``ok``, else an exception); nothing happens when its caller stopped waiting."""
    with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody waits
        loop.call_soon_threadsafe(_settle, future, ok, value)


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # the caller was cancelled
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
