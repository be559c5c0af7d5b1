"""Store operations in SQLAlchemy Core over an async engine: the PostgreSQL store's base.

The embedded SQLite store (``sqlite.py``) runs the same statements on its own thread instead;
the record encodings below are shared, so both backends store the same values.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dovetail.errors import StoreError
from dovetail.store import kpi_sql, parked_sql, repeats
from dovetail.store import schema as t
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
from dovetail.store.codec import epoch as _epoch
from dovetail.store.inbox_commit import GroupCommit


class SqlStore:
    """Shared implementation of the Store protocol over an async SQLAlchemy engine."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: AsyncEngine | None = None
        self.inbox_writer: GroupCommit[dict[str, Any]] = GroupCommit(self._insert_inbox_rows)
        """Batches ``inbox_put`` calls; its ``commits`` and ``rows`` count what it wrote."""

    def _create_engine(self) -> AsyncEngine:
        raise NotImplementedError

    def _insert(self, table: sa.Table) -> Any:
        raise NotImplementedError

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise StoreError("store is not open")
        return self._engine

    async def open(self) -> None:
        """Create the engine and apply pending migrations."""
        if self._engine is not None:
            return
        self._engine = self._create_engine()
        try:
            async with self._engine.begin() as conn:
                await conn.run_sync(self._migrate)
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            await self._engine.dispose()
            self._engine = None
            raise StoreError(f"cannot open store {self.url}: {exc}") from exc

    @staticmethod
    def _migrate(sync_conn: sa.Connection) -> None:
        t.schema_version.create(sync_conn, checkfirst=True)
        current = sync_conn.execute(sa.select(sa.func.max(t.schema_version.c.version))).scalar()
        current = current or 0
        for version, changes in t.MIGRATIONS:
            if version <= current:
                continue
            for change in changes:
                if isinstance(change, t.NewColumns):
                    _add_columns(sync_conn, change)
                else:
                    change.create(sync_conn, checkfirst=True)
            sync_conn.execute(
                t.schema_version.insert().values(version=version, applied_at=time.time())
            )
        newest = max(v for v, _ in t.MIGRATIONS)
        if current > newest:
            raise StoreError(f"store schema version {current} is newer than this release")

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    # -- checkpoints -------------------------------------------------------------------------

    async def get_checkpoint(self, flow: str, key: str) -> dict[str, Any] | None:
        query = sa.select(t.checkpoints.c.value).where(
            t.checkpoints.c.flow == flow, t.checkpoints.c.key == key
        )
        async with self.engine.connect() as conn:
            value = (await conn.execute(query)).scalar()
        return None if value is None else dict(decode_json(value))

    async def put_checkpoint(self, flow: str, key: str, value: dict[str, Any]) -> None:
        stmt = self._insert(t.checkpoints).values(
            flow=flow, key=key, value=encode_json_text(value), updated_at=time.time()
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["flow", "key"],
            set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
        )
        async with self.engine.begin() as conn:
            await conn.execute(stmt)

    async def delete_checkpoint(self, flow: str, key: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                t.checkpoints.delete().where(
                    t.checkpoints.c.flow == flow, t.checkpoints.c.key == key
                )
            )

    # -- durable inbox -----------------------------------------------------------------------

    async def inbox_put(self, flow: str, payload: bytes, headers: dict[str, str], ref: str) -> int:
        """Group commit (``GroupCommit``): concurrent calls share one transaction."""
        row = {
            "flow": flow,
            "payload": payload,
            "headers": encode_json_text(headers),
            "ref": ref,
            "received_at": time.time(),
        }
        return await self.inbox_writer.put(row)

    async def _insert_inbox_rows(self, rows: list[dict[str, Any]]) -> list[int]:
        """One transaction for ``rows``; their ids, in order."""
        stmt = t.inbox.insert().returning(t.inbox.c.id, sort_by_parameter_order=True)
        async with self.engine.begin() as conn:
            result = await conn.execute(stmt, rows)
        return [int(row_id) for row_id in result.scalars()]

    async def inbox_pending(
        self, flow: str, limit: int, skip: Collection[int] = ()
    ) -> list[InboxItem]:
        """The oldest ``limit`` rows of ``flow`` whose ids are not in ``skip``: the oldest
        ids first (``limit`` plus one per skipped id), then the chosen rows, so a long
        ``skip`` never becomes a statement with thousands of parameters."""
        skipped = set(skip)
        ids_query = (
            sa.select(t.inbox.c.id)
            .where(t.inbox.c.flow == flow)
            .order_by(t.inbox.c.id)
            .limit(limit + len(skipped))
        )
        async with self.engine.connect() as conn:
            ids = (await conn.execute(ids_query)).scalars().all()
            chosen = [row_id for row_id in ids if row_id not in skipped][:limit]
            if not chosen:
                return []
            query = sa.select(t.inbox).where(t.inbox.c.id.in_(chosen)).order_by(t.inbox.c.id)
            rows = (await conn.execute(query)).all()
        return [
            InboxItem(
                id=row.id,
                flow=row.flow,
                payload=row.payload,
                headers=decode_json(row.headers),
                ref=row.ref,
                received_at=datetime.fromtimestamp(row.received_at, UTC),
            )
            for row in rows
        ]

    async def inbox_delete(self, ids: list[int]) -> None:
        """Remove settled inbox rows."""
        if not ids:
            return
        async with self.engine.begin() as conn:
            await conn.execute(t.inbox.delete().where(t.inbox.c.id.in_(ids)))

    async def inbox_depth(self, flow: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(t.inbox)
        if flow is not None:
            query = query.where(t.inbox.c.flow == flow)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar() or 0)

    # -- settlement --------------------------------------------------------------------------

    def _marks(self, count: int) -> str:
        """Driver placeholders for ``count`` parameters (qmark or numeric_dollar)."""
        if self.engine.dialect.paramstyle == "numeric_dollar":
            return ", ".join(f"${i}" for i in range(1, count + 1))
        if self.engine.dialect.paramstyle in {"format", "pyformat"}:
            return ", ".join(["%s"] * count)
        return ", ".join(["?"] * count)

    async def settle_batch(self, record: BatchRecord) -> list[int]:
        """One transaction per batch; bulk rows go straight to the driver's executemany."""
        now = time.time()
        entries: list[tuple[int, bool]] = []
        fresh = [letter for letter in record.dead_letters if letter.id is None]
        again = [letter for letter in record.dead_letters if letter.id is not None]
        async with self.engine.begin() as conn:
            if fresh:
                entries.extend(await self._record_dead_letters(conn, fresh, now))
            for letter in again:
                entries.append((await self._reopen_dead_letter(conn, letter, now), False))
            labels = repeats.labelled_details(record.journal, [*fresh, *again], entries)
            if record.deliveries:
                await conn.exec_driver_sql(
                    f"INSERT INTO {t.deliveries.name} (flow, sink, key, message_id,"
                    f" delivered_at) VALUES ({self._marks(5)})"
                    " ON CONFLICT (flow, sink, key) DO NOTHING",
                    [(record.flow, d.sink, d.key, d.message_id, now) for d in record.deliveries],
                )
            if record.replayed:
                await conn.execute(
                    t.dead_letters.update()
                    .where(t.dead_letters.c.id.in_(record.replayed))
                    .values(status="replayed")
                )
            if record.unparked:
                await conn.execute(t.parked.delete().where(t.parked.c.id.in_(record.unparked)))
            parked = [parked_sql.insert_row(m, now) for m in record.parked if m.id is None]
            if parked:
                await conn.exec_driver_sql(self._driver_sql(parked_sql.INSERT), parked)
            parked_again = [
                parked_sql.update_row(m, now) for m in record.parked if m.id is not None
            ]
            if parked_again:
                await conn.exec_driver_sql(self._driver_sql(parked_sql.UPDATE), parked_again)
            if record.trace_keys:
                await conn.exec_driver_sql(
                    f"INSERT INTO {t.trace_keys.name} (key, flow, message_id, at)"
                    f" VALUES ({self._marks(4)}) ON CONFLICT (key, flow, message_id) DO NOTHING",
                    [(k.key, record.flow, k.message_id, now) for k in record.trace_keys],
                )
            if record.journal:
                dumps = encode_json
                await conn.exec_driver_sql(
                    f"INSERT INTO {t.journal.name} (at, flow, message_id, correlation_id, event,"
                    f" step, detail) VALUES ({self._marks(7)})",
                    [
                        (
                            now if e.at is None else e.at.timestamp(),
                            e.flow,
                            e.message_id,
                            e.correlation_id,
                            e.event,
                            e.step,
                            None
                            if (detail := labels.get(index, e.detail)) is None
                            else dumps(detail).decode(),
                        )
                        for index, e in enumerate(record.journal)
                    ],
                )
        return [entry_id for entry_id, _ in entries]

    async def _record_dead_letters(
        self, conn: AsyncConnection, letters: list[DeadLetter], now: float
    ) -> list[tuple[int, bool]]:
        """Insert new dead letters, folding repeats into open entries (``repeats``); the entry
        id of each letter, in order, and whether it was a repeat."""
        rows: list[Any] = []
        for flow, keys in repeats.keys_by_flow(letters).items():
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                sql = repeats.FIND_OPEN.format(marks=", ".join("?" * len(chunk)))
                rows.extend(await self._fetch(conn, sql, [flow, *chunk]))
        plan = repeats.fold_repeats(letters, repeats.open_entries(rows), now)
        inserted = await self._insert_dead_letters(
            conn, [new.letter for new in plan.inserts], now, plan.inserts
        )
        if plan.repeated:
            await conn.exec_driver_sql(
                self._driver_sql(repeats.REPEAT),
                [(e.added, now, encode_json_text(e.history), e.id) for e in plan.repeated],
            )
        return repeats.entries_of(plan, inserted)

    async def _insert_dead_letters(
        self,
        conn: AsyncConnection,
        letters: list[DeadLetter],
        now: float,
        planned: list[repeats.NewEntry] | None = None,
    ) -> list[int]:
        """Insert ``letters`` (with their ``planned`` history and repeats); their new ids."""
        if not letters:
            return []
        plans = planned or [
            repeats.NewEntry(letter, [*letter.history, history_entry(letter, now)])
            for letter in letters
        ]
        rows = [
            {
                "flow": letter.flow,
                "flow_version": letter.flow_version,
                "message_id": letter.message_id,
                "correlation_id": letter.correlation_id,
                "step": letter.step,
                "reason": letter.reason,
                "error_class": letter.error_class,
                "attempt": letter.attempt,
                "payload": encode_payload(letter.payload),
                "headers": encode_json_text(letter.headers),
                "source_position": None
                if letter.source_position is None
                else encode_json_text(letter.source_position),
                "detail": letter.detail,
                "status": "open",
                "first_failed_at": _epoch(letter.first_failed_at) or now,
                "last_failed_at": now,
                "history": encode_json_text(plan.history),
                "idempotency_key": letter.idempotency_key,
                "repeats": plan.repeats,
            }
            for letter, plan in zip(letters, plans, strict=True)
        ]
        stmt = t.dead_letters.insert().returning(t.dead_letters.c.id, sort_by_parameter_order=True)
        result = await conn.execute(stmt, rows)
        return [int(row[0]) for row in result.all()]

    async def _reopen_dead_letter(
        self, conn: AsyncConnection, letter: DeadLetter, now: float
    ) -> int:
        """A replay failed again: reopen its entry and append the failure to its history."""
        assert letter.id is not None
        row = (
            await conn.execute(
                sa.select(t.dead_letters.c.history, t.dead_letters.c.attempt).where(
                    t.dead_letters.c.id == letter.id
                )
            )
        ).first()
        if row is None:  # the entry was purged meanwhile: record the failure afresh
            (new_id,) = await self._insert_dead_letters(conn, [letter], now)
            return new_id
        history = [*decode_json(row.history), history_entry(letter, now)]
        await conn.execute(
            t.dead_letters.update()
            .where(t.dead_letters.c.id == letter.id)
            .values(
                status="open",
                step=letter.step,
                reason=letter.reason,
                error_class=letter.error_class,
                attempt=row.attempt + letter.attempt,
                detail=letter.detail,
                flow_version=letter.flow_version,
                last_failed_at=now,
                history=encode_json_text(history),
            )
        )
        return letter.id

    # -- parked retries ----------------------------------------------------------------------

    def _driver_sql(self, sql: str) -> str:
        """``?`` placeholders in the driver's style."""
        style = self.engine.dialect.paramstyle
        if style == "qmark":
            return sql
        parts = sql.split("?")
        if style == "numeric_dollar":
            marks = [f"${i}" for i in range(1, len(parts))]
        else:
            marks = ["%s"] * (len(parts) - 1)
        return parts[0] + "".join(m + p for m, p in zip(marks, parts[1:], strict=True))

    async def _fetch(self, conn: AsyncConnection, sql: str, params: list[Any]) -> list[Any]:
        result = await conn.exec_driver_sql(self._driver_sql(sql), tuple(params))
        return list(result.all())

    async def claim_parked(
        self, flow: str, now: datetime, lease: float, limit: int
    ) -> list[ParkedMessage]:
        at = now.timestamp()
        async with self.engine.begin() as conn:
            rows = await self._fetch(
                conn, parked_sql.DUE + " FOR UPDATE OF p SKIP LOCKED", [flow, at, limit]
            )
            found = [parked_sql.from_row(row) for row in rows]
            if found:
                await conn.execute(
                    t.parked.update()
                    .where(t.parked.c.id.in_([m.id for m in found]))
                    .values(next_attempt_at=parked_sql.lease_until(at, lease))
                )
        return found

    async def parked_blocking(
        self, flow: str, sink: str, ordering_keys: list[str], idempotency_keys: list[str]
    ) -> tuple[set[str], set[str]]:
        found: dict[str, set[str]] = {"ordering_key": set(), "idempotency_key": set()}
        async with self.engine.connect() as conn:
            for column, keys in (
                ("ordering_key", ordering_keys),
                ("idempotency_key", idempotency_keys),
            ):
                for start in range(0, len(keys), 500):
                    sql, params = parked_sql.blocking(column, flow, sink, keys[start : start + 500])
                    found[column].update(row[0] for row in await self._fetch(conn, sql, params))
        return found["ordering_key"], found["idempotency_key"]

    async def parked(
        self, flow: str | None = None, limit: int | None = None
    ) -> list[ParkedMessage]:
        sql, params = parked_sql.listing(flow, limit)
        async with self.engine.connect() as conn:
            rows = await self._fetch(conn, sql, params)
        return [parked_sql.from_row(row) for row in rows]

    async def parked_count(self, flow: str | None = None) -> int:
        sql, params = parked_sql.counting(flow)
        async with self.engine.connect() as conn:
            rows = await self._fetch(conn, sql, params)
        return int(rows[0][0] or 0)

    # -- idempotency -------------------------------------------------------------------------

    async def delivered_keys(self, flow: str, sink: str, keys: list[str]) -> set[str]:
        if not keys:
            return set()
        found: set[str] = set()
        async with self.engine.connect() as conn:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                query = sa.select(t.deliveries.c.key).where(
                    t.deliveries.c.flow == flow,
                    t.deliveries.c.sink == sink,
                    t.deliveries.c.key.in_(chunk),
                )
                found.update((await conn.execute(query)).scalars())
        return found

    async def forget_deliveries(self, older_than: datetime) -> int:
        """Drop idempotency keys older than the retention window; returns how many."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                t.deliveries.delete().where(t.deliveries.c.delivered_at < older_than.timestamp())
            )
        return int(result.rowcount or 0)

    # -- dead letters ------------------------------------------------------------------------

    async def dead_letters(self, query: DeadLetterQuery) -> list[DeadLetter]:
        c = t.dead_letters.c
        stmt = sa.select(t.dead_letters).order_by(c.id.desc() if query.newest else c.id)
        if query.flow is not None:
            stmt = stmt.where(c.flow == query.flow)
        if query.ids:
            stmt = stmt.where(c.id.in_(query.ids))
        if query.status is not None:
            stmt = stmt.where(c.status == query.status)
        if query.reason is not None:
            stmt = stmt.where(c.reason.contains(query.reason, autoescape=True))
        if query.since is not None:
            stmt = stmt.where(c.last_failed_at >= query.since.timestamp())
        if query.until is not None:
            stmt = stmt.where(c.last_failed_at <= query.until.timestamp())
        if query.limit is not None:
            stmt = stmt.limit(query.limit)
        async with self.engine.connect() as conn:
            rows = list((await conn.execute(stmt)).all())
        if query.newest:
            rows.reverse()
        return [
            DeadLetter(
                id=row.id,
                flow=row.flow,
                flow_version=row.flow_version,
                message_id=row.message_id,
                correlation_id=row.correlation_id,
                step=row.step,
                reason=row.reason,
                error_class=row.error_class,
                attempt=row.attempt,
                payload=decode_payload(row.payload),
                headers=decode_json(row.headers),
                source_position=None
                if row.source_position is None
                else decode_json(row.source_position),
                detail=row.detail,
                status=row.status,
                first_failed_at=timestamp(row.first_failed_at),
                last_failed_at=timestamp(row.last_failed_at),
                history=decode_json(row.history),
                idempotency_key=row.idempotency_key,
                repeats=row.repeats,
            )
            for row in rows
        ]

    async def set_dead_letter_status(self, ids: list[int], status: str) -> int:
        if not ids:
            return 0
        async with self.engine.begin() as conn:
            result = await conn.execute(
                t.dead_letters.update().where(t.dead_letters.c.id.in_(ids)).values(status=status)
            )
        return int(result.rowcount or 0)

    # -- journal -----------------------------------------------------------------------------

    async def journal_for(self, message_or_correlation_id: str) -> list[JournalEvent]:
        c = t.journal.c
        key = message_or_correlation_id
        stmt = (
            sa.select(t.journal)
            .where(sa.or_(c.message_id == key, c.correlation_id == key))
            .order_by(c.at, c.id)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [
            JournalEvent(
                message_id=row.message_id,
                correlation_id=row.correlation_id,
                flow=row.flow,
                event=row.event,
                step=row.step,
                detail=None if row.detail is None else decode_json(row.detail),
                at=timestamp(row.at),
            )
            for row in rows
        ]

    async def messages_with_key(self, key: str, limit: int) -> list[str]:
        c = t.trace_keys.c
        stmt = sa.select(c.message_id).where(c.key == key).order_by(c.at, c.message_id).limit(limit)
        async with self.engine.connect() as conn:
            found = (await conn.execute(stmt)).scalars().all()
        return list(dict.fromkeys(found))

    async def kpi_rows(self, flow: str | None, since: datetime, until: datetime) -> list[KpiRow]:
        """Per-flow KPI aggregates of the window (``kpi_sql``), on one connection."""
        queries = kpi_sql.statements("postgresql", flow, since, until)
        async with self.engine.connect() as conn:
            results = {
                name: await self._fetch(conn, sql, params)
                for name, (sql, params) in queries.items()
            }
        return kpi_sql.assemble(results)


def _add_columns(sync_conn: sa.Connection, change: t.NewColumns) -> None:
    """Add the columns ``change`` names that the table lacks, its indexes, then backfill."""
    table = change.table
    present = {column["name"] for column in sa.inspect(sync_conn).get_columns(table.name)}
    for name in change.columns:
        if name not in present:
            spec = sa.schema.CreateColumn(table.c[name]).compile(dialect=sync_conn.dialect)
            sync_conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {spec}"))
    for index in table.indexes:
        index.create(sync_conn, checkfirst=True)
    fill = change.backfill.get(sync_conn.dialect.name)
    if fill is not None:
        sync_conn.execute(sa.text(fill))
