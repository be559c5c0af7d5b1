"""The embedded store: SQLite under ``.dovetail/`` in WAL mode, on one dedicated thread.

``synchronous=FULL``: a commit is on disk before the call returns, so an acknowledged webhook
or a settled batch survives ``kill -9`` and power loss alike. WAL lets other processes read
(``dovetail dlq list`` while ``dovetail run`` writes); writers take the lock up front
(``BEGIN IMMEDIATE``) and wait for it up to the busy timeout.

Each store method is one call into the store's thread (``SqliteThread``), which owns a stdlib
``sqlite3`` connection: a whole settlement (dead letters, delivered keys, replayed marks, journal
events) is one transaction of prepared ``executemany`` statements and one hop from the event loop.
The tables are those of ``schema.py`` (``sqlite_migrations.py`` creates them).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from dovetail.errors import StoreError
from dovetail.store import kpi_sql, parked_sql, repeats
from dovetail.store.base import (
    BatchRecord,
    DeadLetter,
    DeadLetterQuery,
    InboxItem,
    JournalEvent,
    KpiRow,
    ParkedMessage,
)
from dovetail.store.codec import (
    decode_json,
    decode_payload,
    encode_json,
    encode_json_text,
    encode_payload,
    history_entry,
    timestamp,
)
from dovetail.store.sqlite_inbox import InboxGroupCommit
from dovetail.store.sqlite_migrations import migrate
from dovetail.store.sqlite_thread import (
    Operation,
    SqliteThread,
    T,
    in_transaction,
    insert_rows,
)

BUSY_TIMEOUT = 30.0
"""Seconds a writer waits for another connection's write lock before failing."""

_CACHE_KIB = 32_000
"""Page cache of the store's connection: the journal's indexes on random ids stay in memory."""

_CHECKPOINT_PAGES = 10_000
"""WAL pages before an automatic checkpoint (SQLite's default is 1000): a page that many
batches touch (an index page) is copied into the database once per checkpoint, not every
other batch. Commits are durable in the WAL either way."""

_CHUNK = 500
"""Most values bound into one ``IN (...)`` list."""

_LETTER_FIELDS = (
    "id",
    "flow",
    "flow_version",
    "message_id",
    "correlation_id",
    "step",
    "reason",
    "error_class",
    "attempt",
    "payload",
    "headers",
    "source_position",
    "detail",
    "status",
    "first_failed_at",
    "last_failed_at",
    "history",
    "idempotency_key",
    "repeats",
)
_LETTER_COLUMNS = ", ".join(_LETTER_FIELDS)
_INSERT_LETTER = (
    "INSERT INTO dovetail_dead_letters (flow, flow_version, message_id, correlation_id, step,"
    " reason, error_class, attempt, payload, headers, source_position, detail, status,"
    " first_failed_at, last_failed_at, history, idempotency_key, repeats)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_REOPEN_LETTER = (
    "UPDATE dovetail_dead_letters SET status = 'open', step = ?, reason = ?, error_class = ?,"
    " attempt = ?, detail = ?, flow_version = ?, last_failed_at = ?, history = ? WHERE id = ?"
)
_INSERT_DELIVERY = (
    'INSERT INTO dovetail_deliveries (flow, sink, "key", message_id, delivered_at)'
    ' VALUES (?, ?, ?, ?, ?) ON CONFLICT (flow, sink, "key") DO NOTHING'
)
_INSERT_EVENT = (
    "INSERT INTO dovetail_journal (at, flow, message_id, correlation_id, event, step, detail)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_TRACE_KEY = (
    'INSERT INTO dovetail_trace_keys ("key", flow, message_id, at) VALUES (?, ?, ?, ?)'
    ' ON CONFLICT ("key", flow, message_id) DO NOTHING'
)
_MARK_REPLAYED = "UPDATE dovetail_dead_letters SET status = 'replayed' WHERE id"

_LetterRow = tuple[Any, ...]
"""A dead letter's values in ``_INSERT_LETTER`` order."""


class SqliteStore:
    """State in one SQLite file; created with its folder on first open."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._thread: SqliteThread | None = None
        self.inbox_writer = InboxGroupCommit(self._run, self.url)
        """Batches ``inbox_put`` calls; its ``commits`` and ``rows`` count what it wrote."""

    async def open(self) -> None:
        """Open the connection and apply pending migrations; raises ``StoreError``."""
        if self._thread is not None:
            return
        thread = SqliteThread("dovetail-store")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            await thread.start(self._connect)
            await thread.run(migrate)
        except BaseException as exc:
            await thread.stop()
            if isinstance(exc, sqlite3.Error | OSError):
                raise StoreError(f"cannot open store {self.url}: {exc}") from exc
            raise
        self._thread = thread

    async def close(self) -> None:
        """Close the connection after the operations already under way."""
        thread, self._thread = self._thread, None
        if thread is not None:
            await thread.stop()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
            connection.execute(f"PRAGMA wal_autocheckpoint={_CHECKPOINT_PAGES}")
        except BaseException:
            connection.close()
            raise
        return connection

    async def _run(self, operation: Operation[T]) -> T:
        if self._thread is None:
            raise StoreError("store is not open")
        try:
            return await self._thread.run(operation)
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.url}: {exc}") from exc

    async def _write(self, operation: Operation[T]) -> T:
        return await self._run(lambda connection: in_transaction(connection, operation))

    # -- checkpoints -------------------------------------------------------------------------

    async def get_checkpoint(self, flow: str, key: str) -> dict[str, Any] | None:
        sql = 'SELECT value FROM dovetail_checkpoints WHERE flow = ? AND "key" = ?'
        row = await self._run(lambda c: c.execute(sql, (flow, key)).fetchone())
        return None if row is None else dict(decode_json(row[0]))

    async def put_checkpoint(self, flow: str, key: str, value: dict[str, Any]) -> None:
        sql = (
            'INSERT INTO dovetail_checkpoints (flow, "key", value, updated_at) VALUES (?, ?, ?, ?)'
            ' ON CONFLICT (flow, "key") DO UPDATE SET value = excluded.value,'
            " updated_at = excluded.updated_at"
        )
        params = (flow, key, encode_json_text(value), time.time())
        await self._write(lambda c: c.execute(sql, params))

    async def delete_checkpoint(self, flow: str, key: str) -> None:
        sql = 'DELETE FROM dovetail_checkpoints WHERE flow = ? AND "key" = ?'
        await self._write(lambda c: c.execute(sql, (flow, key)))

    # -- durable inbox -----------------------------------------------------------------------

    async def inbox_put(self, flow: str, payload: bytes, headers: dict[str, str], ref: str) -> int:
        """Group commit (``InboxGroupCommit``): concurrent calls share one transaction."""
        row = (flow, payload, encode_json_text(headers), ref, time.time())
        return await self.inbox_writer.put(row)

    async def inbox_pending(
        self, flow: str, limit: int, skip: Collection[int] = ()
    ) -> list[InboxItem]:
        """The oldest ``limit`` rows of ``flow`` whose ids are not in ``skip``."""
        sql = (
            "SELECT id, flow, payload, headers, ref, received_at FROM dovetail_inbox"
            " WHERE flow = ? AND id NOT IN (SELECT value FROM json_each(?)) ORDER BY id LIMIT ?"
        )
        params = (flow, orjson.dumps(list(skip)).decode(), limit)
        rows = await self._run(lambda c: c.execute(sql, params).fetchall())
        return [
            InboxItem(
                id=row_id,
                flow=row_flow,
                payload=bytes(payload),
                headers=decode_json(headers),
                ref=ref,
                received_at=datetime.fromtimestamp(received_at, UTC),
            )
            for row_id, row_flow, payload, headers, ref, received_at in rows
        ]

    async def inbox_delete(self, ids: list[int]) -> None:
        """Remove settled inbox rows, in the inbox's next group commit."""
        if not ids:
            return
        await self.inbox_writer.delete(ids)

    async def inbox_depth(self, flow: str | None = None) -> int:
        """Inbox rows waiting, of one flow or of all."""
        params: tuple[str, ...] = ()
        if flow is None:
            sql = "SELECT count(*) FROM dovetail_inbox"
        else:
            sql, params = "SELECT count(*) FROM dovetail_inbox WHERE flow = ?", (flow,)
        row = await self._run(lambda c: c.execute(sql, params).fetchone())
        return int(row[0] or 0)

    # -- settlement --------------------------------------------------------------------------

    async def settle_batch(self, record: BatchRecord) -> list[int]:
        """One transaction per batch, one call into the store's thread, few statements: rows
        go in multi-row inserts (``insert_rows``)."""
        now = time.time()
        fresh = [letter for letter in record.dead_letters if letter.id is None]
        again = [
            (letter.id, _letter_row(letter, now), letter)
            for letter in record.dead_letters
            if letter.id is not None
        ]
        flow = record.flow
        replayed = record.replayed
        deliveries = [(flow, d.sink, d.key, d.message_id, now) for d in record.deliveries]
        trace_keys = [(k.key, flow, k.message_id, now) for k in record.trace_keys]
        dumps = encode_json
        events = [
            (
                now if e.at is None else e.at.timestamp(),
                e.flow,
                e.message_id,
                e.correlation_id,
                e.event,
                e.step,
                None if e.detail is None else dumps(e.detail).decode(),
            )
            for e in record.journal
        ]

        parked = [parked_sql.insert_row(m, now) for m in record.parked if m.id is None]
        parked_again = [parked_sql.update_row(m, now) for m in record.parked if m.id is not None]
        unparked = record.unparked

        def settle(connection: sqlite3.Connection) -> list[int]:
            entries = _record_letters(connection, fresh, now)
            for letter_id, row, letter in again:
                entries.append((_reopen_letter(connection, letter_id, row, letter, now), False))
            letters = [*fresh, *(letter for _, _, letter in again)]
            labels = repeats.labelled_details(record.journal, letters, entries)
            for index, detail in labels.items():
                events[index] = (*events[index][:6], dumps(detail).decode())
            insert_rows(connection, _INSERT_DELIVERY, deliveries)
            if replayed:
                _in_chunks(connection, _MARK_REPLAYED, replayed)
            if unparked:
                _in_chunks(connection, parked_sql.DELETE, unparked)
            if parked:
                connection.executemany(parked_sql.INSERT, parked)
            if parked_again:
                connection.executemany(parked_sql.UPDATE, parked_again)
            insert_rows(connection, _INSERT_EVENT, events)
            insert_rows(connection, _INSERT_TRACE_KEY, trace_keys)
            return [entry_id for entry_id, _ in entries]

        return await self._write(settle)

    # -- idempotency -------------------------------------------------------------------------

    async def delivered_keys(self, flow: str, sink: str, keys: list[str]) -> set[str]:
        if not keys:
            return set()

        def query(connection: sqlite3.Connection) -> set[str]:
            found: set[str] = set()
            for chunk in _chunks(keys):
                marks = ", ".join("?" * len(chunk))
                rows = connection.execute(
                    'SELECT "key" FROM dovetail_deliveries'
                    f' WHERE flow = ? AND sink = ? AND "key" IN ({marks})',
                    (flow, sink, *chunk),
                )
                found.update(row[0] for row in rows)
            return found

        return await self._run(query)

    async def forget_deliveries(self, older_than: datetime) -> int:
        """Drop idempotency keys older than the retention window; returns how many."""
        sql = "DELETE FROM dovetail_deliveries WHERE delivered_at < ?"
        cutoff = older_than.timestamp()
        return await self._write(lambda c: int(c.execute(sql, (cutoff,)).rowcount))

    # -- dead letters ------------------------------------------------------------------------

    async def dead_letters(self, query: DeadLetterQuery) -> list[DeadLetter]:
        where: list[str] = []
        params: list[Any] = []
        if query.flow is not None:
            where.append("flow = ?")
            params.append(query.flow)
        if query.ids:
            where.append(f"id IN ({', '.join('?' * len(query.ids))})")
            params.extend(query.ids)
        if query.status is not None:
            where.append("status = ?")
            params.append(query.status)
        if query.reason is not None:
            where.append("reason LIKE '%' || ? || '%' ESCAPE '/'")
            params.append(_like_literal(query.reason))
        if query.since is not None:
            where.append("last_failed_at >= ?")
            params.append(query.since.timestamp())
        if query.until is not None:
            where.append("last_failed_at <= ?")
            params.append(query.until.timestamp())
        sql = f"SELECT {_LETTER_COLUMNS} FROM dovetail_dead_letters"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC" if query.newest else " ORDER BY id"
        if query.limit is not None:
            sql += " LIMIT ?"
            params.append(query.limit)
        rows = await self._run(lambda c: c.execute(sql, params).fetchall())
        if query.newest:
            rows.reverse()
        return [_dead_letter(row) for row in rows]

    async def set_dead_letter_status(self, ids: list[int], status: str) -> int:
        if not ids:
            return 0
        head = "UPDATE dovetail_dead_letters SET status = ? WHERE id"
        return await self._write(lambda c: _in_chunks(c, head, ids, (status,)))

    # -- journal -----------------------------------------------------------------------------

    async def journal_for(self, message_or_correlation_id: str) -> list[JournalEvent]:
        sql = (
            "SELECT message_id, correlation_id, flow, event, step, detail, at"
            " FROM dovetail_journal WHERE message_id = ? OR correlation_id = ? ORDER BY at, id"
        )
        key = message_or_correlation_id
        rows = await self._run(lambda c: c.execute(sql, (key, key)).fetchall())
        return [
            JournalEvent(
                message_id=message_id,
                correlation_id=correlation_id,
                flow=flow,
                event=event,
                step=step,
                detail=None if detail is None else decode_json(detail),
                at=timestamp(at),
            )
            for message_id, correlation_id, flow, event, step, detail, at in rows
        ]

    async def messages_with_key(self, key: str, limit: int) -> list[str]:
        sql = (
            'SELECT message_id FROM dovetail_trace_keys WHERE "key" = ?'
            " ORDER BY at, message_id LIMIT ?"
        )
        rows = await self._run(lambda c: c.execute(sql, (key, limit)).fetchall())
        return list(dict.fromkeys(row[0] for row in rows))

    async def kpi_rows(self, flow: str | None, since: datetime, until: datetime) -> list[KpiRow]:
        """Per-flow KPI aggregates of the window (``kpi_sql``), in one call to the thread."""
        queries = kpi_sql.statements("sqlite", flow, since, until)

        def query(connection: sqlite3.Connection) -> list[KpiRow]:
            results = {
                name: connection.execute(sql, params).fetchall()
                for name, (sql, params) in queries.items()
            }
            return kpi_sql.assemble(results)

        return await self._run(query)

    # -- parked retries ----------------------------------------------------------------------

    async def claim_parked(
        self, flow: str, now: datetime, lease: float, limit: int
    ) -> list[ParkedMessage]:
        at = now.timestamp()

        def claim(connection: sqlite3.Connection) -> list[ParkedMessage]:
            rows = connection.execute(parked_sql.DUE, (flow, at, limit)).fetchall()
            found = [parked_sql.from_row(row) for row in rows]
            leased = [m.id for m in found]
            if leased:
                until = parked_sql.lease_until(at, lease)
                _in_chunks(connection, parked_sql.LEASE, leased, (until,))
            return found

        return await self._write(claim)

    async def parked_blocking(
        self, flow: str, sink: str, ordering_keys: list[str], idempotency_keys: list[str]
    ) -> tuple[set[str], set[str]]:
        def query(connection: sqlite3.Connection) -> tuple[set[str], set[str]]:
            found: dict[str, set[str]] = {"ordering_key": set(), "idempotency_key": set()}
            for column, keys in (
                ("ordering_key", ordering_keys),
                ("idempotency_key", idempotency_keys),
            ):
                for chunk in _chunks(keys):
                    sql, params = parked_sql.blocking(column, flow, sink, chunk)
                    found[column].update(row[0] for row in connection.execute(sql, params))
            return found["ordering_key"], found["idempotency_key"]

        return await self._run(query)

    async def parked(
        self, flow: str | None = None, limit: int | None = None
    ) -> list[ParkedMessage]:
        sql, params = parked_sql.listing(flow, limit)
        rows = await self._run(lambda c: c.execute(sql, params).fetchall())
        return [parked_sql.from_row(row) for row in rows]

    async def parked_count(self, flow: str | None = None) -> int:
        sql, params = parked_sql.counting(flow)
        row = await self._run(lambda c: c.execute(sql, params).fetchone())
        return int(row[0] or 0)


def _record_letters(
    connection: sqlite3.Connection, letters: list[DeadLetter], now: float
) -> list[tuple[int, bool]]:
    """Insert new dead letters, folding repeats into open entries (``repeats``); the entry
    id of each letter, in order, and whether it was a repeat."""
    if not letters:
        return []
    rows: list[Any] = []
    for flow, keys in repeats.keys_by_flow(letters).items():
        for chunk in _chunks(keys):
            sql = repeats.FIND_OPEN.format(marks=", ".join("?" * len(chunk)))
            rows.extend(connection.execute(sql, (flow, *chunk)).fetchall())
    plan = repeats.fold_repeats(letters, repeats.open_entries(rows), now)
    inserted = _insert_letters(
        connection, [_letter_row(new.letter, now, new.history, new.repeats) for new in plan.inserts]
    )
    connection.executemany(
        repeats.REPEAT,
        [(e.added, now, encode_json_text(e.history), e.id) for e in plan.repeated],
    )
    return repeats.entries_of(plan, inserted)


def _letter_row(
    letter: DeadLetter,
    now: float,
    history: list[dict[str, Any]] | None = None,
    repeated: int = 0,
) -> _LetterRow:
    """The letter's values; ``history`` (default: its own plus this failure) as stored."""
    first = letter.first_failed_at
    if history is None:
        history = [*letter.history, history_entry(letter, now)]
    return (
        letter.flow,
        letter.flow_version,
        letter.message_id,
        letter.correlation_id,
        letter.step,
        letter.reason,
        letter.error_class,
        letter.attempt,
        encode_payload(letter.payload),
        encode_json_text(letter.headers),
        None if letter.source_position is None else encode_json_text(letter.source_position),
        letter.detail,
        "open",
        (first.timestamp() if first is not None else None) or now,
        now,
        encode_json_text(history),
        letter.idempotency_key,
        repeated,
    )


def _insert_letters(connection: sqlite3.Connection, rows: list[_LetterRow]) -> list[int]:
    """Insert dead letters in order; their new ids, in the same order.

    Inside the write transaction nobody else inserts, and SQLite gives each new row the next
    id after the largest: sorted, the returned ids are in insertion order.
    """
    returned = insert_rows(connection, f"{_INSERT_LETTER} RETURNING id", rows)
    ids = sorted(int(new_id) for (new_id,) in returned)
    if len(ids) != len(rows):
        raise StoreError("the ids of new dead letters could not be read back")
    return ids


def _insert_letter(connection: sqlite3.Connection, row: _LetterRow) -> int:
    new_id = connection.execute(_INSERT_LETTER, row).lastrowid
    if new_id is None:
        raise StoreError("dead-letter insert returned no id")
    return int(new_id)


def _reopen_letter(
    connection: sqlite3.Connection, letter_id: int, row: _LetterRow, letter: DeadLetter, now: float
) -> int:
    """A replay failed again: reopen its entry and append the failure to its history."""
    found = connection.execute(
        "SELECT history, attempt FROM dovetail_dead_letters WHERE id = ?", (letter_id,)
    ).fetchone()
    if found is None:  # the entry was purged meanwhile: record the failure afresh
        return _insert_letter(connection, row)
    history = [*decode_json(found[0]), history_entry(letter, now)]
    connection.execute(
        _REOPEN_LETTER,
        (
            letter.step,
            letter.reason,
            letter.error_class,
            found[1] + letter.attempt,
            letter.detail,
            letter.flow_version,
            now,
            encode_json_text(history),
            letter_id,
        ),
    )
    return letter_id


def _dead_letter(row: Sequence[Any]) -> DeadLetter:
    values = dict(zip(_LETTER_FIELDS, row, strict=True))
    source_position = values["source_position"]
    return DeadLetter(
        **values
        | {
            "payload": decode_payload(bytes(values["payload"])),
            "headers": decode_json(values["headers"]),
            "source_position": None if source_position is None else decode_json(source_position),
            "first_failed_at": timestamp(values["first_failed_at"]),
            "last_failed_at": timestamp(values["last_failed_at"]),
            "history": decode_json(values["history"]),
        }
    )


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _in_chunks(
    connection: sqlite3.Connection, head: str, ids: Sequence[Any], leading: tuple[Any, ...] = ()
) -> int:
    """Run ``{head} IN (...)`` over ``ids`` in chunks; the rows changed in all."""
    changed = 0
    for chunk in _chunks(ids):
        marks = ", ".join("?" * len(chunk))
        changed += connection.execute(f"{head} IN ({marks})", (*leading, *chunk)).rowcount
    return changed


def _like_literal(text: str) -> str:
    """``text`` for ``LIKE ... ESCAPE '/'`` with its wildcards taken literally."""
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")
