"""What the SQLite store promises beyond the Store contract: its file, its locks, its atomicity."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from dovetail.errors import StoreError
from dovetail.store import schema
from dovetail.store.base import BatchRecord, DeadLetter, DeadLetterQuery, Delivery, JournalEvent
from dovetail.store.sqlite import SqliteStore


def _letter(message_id: str = "m-1") -> DeadLetter:
    return DeadLetter(
        flow="orders",
        flow_version="1.0.0",
        message_id=message_id,
        correlation_id="c-1",
        step="validate",
        reason="schema violation",
        error_class="ValidationFailed",
        attempt=1,
        payload={"order_id": 1},
    )


def _schema_of(path: Path) -> list[tuple[str, str, str]]:
    connection = sqlite3.connect(path)
    try:
        return sorted(
            connection.execute(
                "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
            ).fetchall()
        )
    finally:
        connection.close()


def _create_with_sqlalchemy(path: Path) -> None:
    """The store file as SQLAlchemy's ``create_all`` writes it (what earlier releases did)."""
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        schema.metadata.create_all(connection)
        connection.execute(schema.schema_version.insert().values(version=1, applied_at=0.0))
    engine.dispose()


def test_the_file_has_the_tables_sqlalchemy_defines_and_is_in_wal_mode(tmp_path: Path) -> None:
    async def main() -> None:
        store = SqliteStore(tmp_path / "new" / "state.db")
        await store.open()
        await store.close()

    asyncio.run(main())
    _create_with_sqlalchemy(tmp_path / "reference.db")

    assert _schema_of(tmp_path / "new" / "state.db") == _schema_of(tmp_path / "reference.db")
    connection = sqlite3.connect(tmp_path / "new" / "state.db")
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        versions = connection.execute("SELECT version FROM dovetail_schema_version").fetchall()
        assert versions == [(version,) for version, _ in schema.MIGRATIONS]
    finally:
        connection.close()


def test_a_store_written_by_sqlalchemy_opens_and_works(tmp_path: Path) -> None:
    _create_with_sqlalchemy(tmp_path / "state.db")

    async def main() -> list[DeadLetter]:
        store = SqliteStore(tmp_path / "state.db")
        await store.open()
        try:
            await store.settle_batch(BatchRecord(flow="orders", dead_letters=[_letter()]))
            return await store.dead_letters(DeadLetterQuery())
        finally:
            await store.close()

    (letter,) = asyncio.run(main())
    assert letter.payload == {"order_id": 1}


_INBOX_BEFORE_VERSION_3 = (
    "CREATE TABLE dovetail_inbox (id INTEGER NOT NULL, flow VARCHAR(200) NOT NULL,"
    " payload BLOB NOT NULL, headers TEXT NOT NULL, ref VARCHAR(200) NOT NULL,"
    " received_at FLOAT NOT NULL, PRIMARY KEY (id))"
)
"""The inbox as schema versions 1 and 2 created it: a plain rowid table."""


def test_an_older_store_gets_an_inbox_whose_ids_are_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _create_with_sqlalchemy(path)
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("DROP TABLE dovetail_inbox")
        connection.execute(_INBOX_BEFORE_VERSION_3)
        connection.execute("CREATE INDEX ix_dovetail_inbox_flow ON dovetail_inbox (flow)")
        connection.execute("INSERT INTO dovetail_schema_version VALUES (2, 0)")
        connection.executemany(
            "INSERT INTO dovetail_inbox VALUES (?, 'hook', ?, '{}', ?, 0)",
            [(n, b"%d" % n, f"r-{n}") for n in (1, 2, 7)],
        )
    connection.close()

    async def main() -> tuple[list[tuple[int, bytes]], int]:
        store = SqliteStore(path)
        await store.open()
        try:
            waiting = [(item.id, item.payload) for item in await store.inbox_pending("hook", 10)]
            await store.inbox_delete([1, 2, 7])
            return waiting, await store.inbox_put("hook", b"{}", {}, "r-new")
        finally:
            await store.close()

    waiting, new_id = asyncio.run(main())
    assert waiting == [(1, b"1"), (2, b"2"), (7, b"7")]
    assert new_id == 8, "a plain rowid table would have handed out 1 again"
    _create_with_sqlalchemy(tmp_path / "reference.db")
    assert _schema_of(path) == _schema_of(tmp_path / "reference.db")


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    _create_with_sqlalchemy(tmp_path / "state.db")
    connection = sqlite3.connect(tmp_path / "state.db")
    with connection:
        connection.execute("INSERT INTO dovetail_schema_version VALUES (99, 0)")
    connection.close()

    with pytest.raises(StoreError, match="newer than this release"):
        asyncio.run(SqliteStore(tmp_path / "state.db").open())


def test_readers_are_not_blocked_by_a_writer_in_another_process(tmp_path: Path) -> None:
    """``dovetail dlq list`` while ``dovetail run`` writes: WAL lets the reader through."""
    path = tmp_path / "state.db"

    async def main() -> list[DeadLetter]:
        runner = SqliteStore(path)
        await runner.open()
        await runner.settle_batch(BatchRecord(flow="orders", dead_letters=[_letter()]))
        writer = sqlite3.connect(path, isolation_level=None)
        try:
            writer.execute("BEGIN IMMEDIATE")
            writer.execute("UPDATE dovetail_dead_letters SET reason = 'uncommitted'")
            reader = SqliteStore(path)
            await reader.open()
            try:
                started = time.monotonic()
                letters = await reader.dead_letters(DeadLetterQuery())
                assert time.monotonic() - started < 1.0
            finally:
                await reader.close()
            writer.execute("ROLLBACK")
        finally:
            writer.close()
            await runner.close()
        return letters

    (letter,) = asyncio.run(main())
    assert letter.reason == "schema violation"


def test_a_settlement_waits_for_another_writer_instead_of_failing(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    locked = threading.Event()

    def hold_the_write_lock() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(0.5)
        other.execute("COMMIT")
        other.close()

    async def main() -> tuple[float, set[str]]:
        store = SqliteStore(path)
        await store.open()
        holder = threading.Thread(target=hold_the_write_lock)
        holder.start()
        try:
            locked.wait(5)
            started = time.monotonic()
            await store.settle_batch(
                BatchRecord(flow="orders", deliveries=[Delivery("erp", "k-1", "m-1")])
            )
            waited = time.monotonic() - started
            return waited, await store.delivered_keys("orders", "erp", ["k-1"])
        finally:
            holder.join()
            await store.close()

    waited, delivered = asyncio.run(main())
    assert waited >= 0.3
    assert delivered == {"k-1"}


def test_a_settlement_that_fails_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.db"

    async def main() -> tuple[list[DeadLetter], set[str]]:
        store = SqliteStore(path)
        await store.open()
        try:
            refuse = sqlite3.connect(path)
            with refuse:
                refuse.execute(
                    "CREATE TRIGGER refuse BEFORE INSERT ON dovetail_journal"
                    " BEGIN SELECT RAISE(ABORT, 'journal refused'); END"
                )
            refuse.close()
            record = BatchRecord(
                flow="orders",
                dead_letters=[_letter()],
                deliveries=[Delivery("erp", "k-1", "m-2")],
                journal=[JournalEvent("m-2", "c-2", "orders", "delivered", "sink:erp")],
            )
            with pytest.raises(StoreError, match="journal refused"):
                await store.settle_batch(record)
            letters = await store.dead_letters(DeadLetterQuery(status=None))
            return letters, await store.delivered_keys("orders", "erp", ["k-1"])
        finally:
            await store.close()

    assert asyncio.run(main()) == ([], set())


def test_many_ids_and_keys_are_handled_in_chunks(tmp_path: Path) -> None:
    async def main() -> tuple[int, int, int]:
        store = SqliteStore(tmp_path / "state.db")
        await store.open()
        try:
            letters = [_letter(f"m-{n}") for n in range(1200)]
            ids = await store.settle_batch(
                BatchRecord(
                    flow="orders",
                    dead_letters=letters,
                    deliveries=[Delivery("erp", f"k-{n}", f"m-{n}") for n in range(1500)],
                )
            )
            keys = await store.delivered_keys("orders", "erp", [f"k-{n}" for n in range(3000)])
            stored = await store.dead_letters(DeadLetterQuery(ids=ids))
            assert [(d.id, d.message_id) for d in stored] == [
                (new_id, f"m-{n}") for n, new_id in enumerate(ids)
            ]
            changed = await store.set_dead_letter_status(ids, "discarded")
            inbox = [await store.inbox_put("hook", b"{}", {}, f"r-{n}") for n in range(3)]
            await store.inbox_delete(inbox)
            return len(keys), changed, await store.inbox_depth("hook")
        finally:
            await store.close()

    assert asyncio.run(main()) == (1500, 1200, 0)


def test_a_closed_store_refuses_work(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")

    with pytest.raises(StoreError, match="not open"):
        asyncio.run(store.get_checkpoint("f", "k"))


def test_journal_and_keys_keep_exact_values_and_order(tmp_path: Path) -> None:
    """Events and keys in bulk and in order, with their own times, with NUL characters."""
    own_time = datetime(2024, 2, 29, 23, 59, 58, 123457, tzinfo=UTC)

    async def main() -> None:
        store = SqliteStore(tmp_path / "state.db")
        await store.open()
        try:
            events = [
                JournalEvent(f"m-{n}", "c-all", "orders", "delivered", "sink:erp", {"n": n})
                for n in range(700)
            ]
            keys = [Delivery("erp", f"k-{n % 600}", f"m-{n}") for n in range(700)]
            await store.settle_batch(BatchRecord(flow="orders", journal=events, deliveries=keys))
            journey = await store.journal_for("c-all")
            assert [(e.message_id, e.detail) for e in journey] == [
                (f"m-{n}", {"n": n}) for n in range(700)
            ]
            found = await store.delivered_keys("orders", "erp", [f"k-{n}" for n in range(700)])
            assert found == {f"k-{n}" for n in range(600)}

            odd = "m-\x00-nul"
            await store.settle_batch(
                BatchRecord(
                    flow="orders",
                    journal=[JournalEvent(odd, "c-odd", "orders", "received", None, None)],
                    deliveries=[Delivery("erp", "k-\x00", odd)],
                )
            )
            (event,) = await store.journal_for(odd)
            assert event.correlation_id == "c-odd"
            assert await store.delivered_keys("orders", "erp", ["k-\x00", "k-"]) == {"k-\x00"}

            timed = JournalEvent("m-t", "c-t", "orders", "received", at=own_time)
            await store.settle_batch(BatchRecord(flow="orders", journal=[timed]))
            (event,) = await store.journal_for("m-t")
            assert event.at == own_time
        finally:
            await store.close()

    asyncio.run(main())
