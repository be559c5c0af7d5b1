"""Group commit of the SQLite inbox: concurrent writes share transactions, each caller is
answered by its own transaction, and a failed transaction fails exactly its callers."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import threading
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dovetail.errors import StoreError
from dovetail.store.sqlite import SqliteStore

FLOW = "hooks"


def stored_rows(path: Path) -> dict[int, tuple[bytes, str]]:
    """Every inbox row in the file, read through a separate connection: id -> (payload, ref)."""
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute("SELECT id, payload, ref FROM dovetail_inbox").fetchall()
    finally:
        connection.close()
    return {int(row_id): (bytes(payload), str(ref)) for row_id, payload, ref in rows}


def refuse_ref(path: Path, ref: str) -> None:
    """A trigger that makes any transaction inserting an inbox row with ``ref`` fail."""
    connection = sqlite3.connect(path)
    try:
        connection.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON dovetail_inbox"
            f" WHEN NEW.ref = '{ref}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        connection.commit()
    finally:
        connection.close()


async def put_all(store: SqliteStore, requests: list[tuple[bytes, str]]) -> list[int | StoreError]:
    """All requests at once, as concurrent webhook requests do; each one's id or error."""

    async def put(payload: bytes, ref: str) -> int | StoreError:
        try:
            return await store.inbox_put(FLOW, payload, {"x-request-id": ref}, ref=ref)
        except StoreError as exc:
            return exc

    return list(await asyncio.gather(*(put(payload, ref) for payload, ref in requests)))


def test_concurrent_writes_share_commits_and_each_gets_the_id_of_its_own_row(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    requests = [(f'{{"n": {n}}}'.encode(), f"r-{n}") for n in range(200)]

    statements: list[str] = []

    async def main() -> list[int | StoreError]:
        store = SqliteStore(path)
        await store.open()
        try:  # every statement the store's own connection runs, COMMITs included
            await store._run(lambda connection: connection.set_trace_callback(statements.append))
            return await put_all(store, requests)
        finally:
            await store.close()

    results = anyio.run(main)
    commits = statements.count("COMMIT")
    assert commits <= len(requests) // 10, f"{commits} commits for {len(requests)} writes"
    stored = stored_rows(path)
    assert len(stored) == len(requests)
    for request, result in zip(requests, results, strict=True):
        assert isinstance(result, int)
        assert stored[result] == request  # the id answered is the row of this request


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    waves=st.lists(
        st.lists(st.tuples(st.binary(min_size=1, max_size=64), st.booleans()), max_size=12),
        min_size=1,
        max_size=4,
    )
)
def test_a_failed_commit_fails_exactly_its_writers_and_keeps_nothing_of_them(
    waves: list[list[tuple[bytes, bool]]],
) -> None:
    """Writers whose transaction failed (it held a refused row) get ``StoreError`` and left
    nothing behind; every other writer's row is stored under the id it was given."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "state.db"
        numbered = [
            [(payload, "refused" if bad else f"w{w}-{n}") for n, (payload, bad) in enumerate(wave)]
            for w, wave in enumerate(waves)
        ]

        async def main() -> list[list[int | StoreError]]:
            store = SqliteStore(path)
            await store.open()
            refuse_ref(path, "refused")
            try:
                return [await put_all(store, wave) for wave in numbered]
            finally:
                await store.close()

        outcomes = anyio.run(main)
        stored = stored_rows(path)
        answered: set[int] = set()
        for wave, results in zip(numbered, outcomes, strict=True):
            for (payload, ref), result in zip(wave, results, strict=True):
                if ref == "refused":
                    assert isinstance(result, StoreError) and "refused" in str(result)
                elif isinstance(result, int):
                    assert stored[result] == (payload, ref)
                    answered.add(result)
            if all(ref != "refused" for _, ref in wave):
                assert all(isinstance(result, int) for result in results)
        assert set(stored) == answered, "a failed transaction left rows behind"


def test_writes_to_a_closed_store_fail_at_once() -> None:
    async def main() -> None:
        store = SqliteStore(Path(tempfile.gettempdir()) / "never-opened" / "state.db")
        with pytest.raises(StoreError, match="not open"):
            await store.inbox_put(FLOW, b"{}", {}, ref="r")
        with pytest.raises(StoreError, match="not open"):  # the writer is not left stuck
            await store.inbox_put(FLOW, b"{}", {}, ref="r")

    anyio.run(main)


def test_deletes_of_settled_rows_join_the_next_group_commit(tmp_path: Path) -> None:
    """A delete queued while the store is busy shares the transaction of the rows put then:
    no disk flush of its own, and it returns only once that transaction committed."""
    path = tmp_path / "state.db"
    statements: list[str] = []

    async def main() -> tuple[list[int | StoreError], int]:
        store = SqliteStore(path)
        await store.open()
        try:
            old = await put_all(store, [(b"settled-1", "s1"), (b"settled-2", "s2")])
            await store._run(lambda connection: connection.set_trace_callback(statements.append))
            busy = threading.Event()
            async with anyio.create_task_group() as group:
                group.start_soon(store._run, lambda _: busy.wait(10))  # a commit under way
                group.start_soon(store.inbox_delete, [r for r in old if isinstance(r, int)])
                fresh = asyncio.ensure_future(put_all(store, [(b"new", "n1")]))
                with anyio.fail_after(5):
                    while store.inbox_writer.queued < 2:  # noqa: ASYNC110 (a thread's count)
                        await anyio.sleep(0.01)
                busy.set()
            return await fresh, statements.count("COMMIT")
        finally:
            await store.close()

    (new_id,), commits = anyio.run(main)
    assert commits == 1
    assert isinstance(new_id, int)
    assert stored_rows(path) == {new_id: (b"new", "n1")}
