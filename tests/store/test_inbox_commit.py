"""Group commit on the event loop (the SQL store's inbox): rows queued during a write share
the next one, each caller gets its own row's id, a failed write fails exactly its callers,
and a cancelled caller never strands the others."""

from __future__ import annotations

import asyncio
import itertools

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dovetail.errors import StoreError
from dovetail.store.inbox_commit import GroupCommit
from dovetail.store.postgres import PostgresStore


class Table:
    """Rows committed by ``write``: one call is one transaction; a row "bad" fails its
    transaction as a whole; ``gate`` holds each write until set, like a slow disk."""

    def __init__(self) -> None:
        self.rows: dict[int, str] = {}
        self.transactions: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self._ids = itertools.count(1)

    async def write(self, rows: list[str]) -> list[int]:
        await self.gate.wait()
        await asyncio.sleep(0)
        if "bad" in rows:
            raise OSError("disk full")
        ids = [next(self._ids) for _ in rows]
        self.rows.update(zip(ids, rows, strict=True))
        self.transactions.append(rows)
        return ids


async def put(writer: GroupCommit[str], row: str) -> int | OSError:
    try:
        return await writer.put(row)
    except OSError as exc:
        return exc


def test_rows_queued_during_a_write_share_the_next_one() -> None:
    async def main() -> tuple[Table, GroupCommit[str], list[int | OSError]]:
        table = Table()
        writer = GroupCommit(table.write)
        table.gate.clear()
        first = asyncio.ensure_future(put(writer, "r0"))
        await asyncio.sleep(0.01)  # r0's write is under way and held
        rest = [asyncio.ensure_future(put(writer, f"r{n}")) for n in range(1, 50)]
        await asyncio.sleep(0.01)
        table.gate.set()
        return table, writer, [await first, *[await task for task in rest]]

    table, writer, results = anyio.run(main)
    assert table.transactions == [["r0"], [f"r{n}" for n in range(1, 50)]]
    assert writer.commits == 2 and writer.rows == 50
    for n, result in enumerate(results):
        assert isinstance(result, int) and table.rows[result] == f"r{n}"


@settings(max_examples=50, deadline=None)
@given(
    waves=st.lists(
        st.lists(st.sampled_from(["ok", "bad"]), min_size=1, max_size=10), min_size=1, max_size=5
    )
)
def test_each_caller_is_answered_by_its_own_transaction(waves: list[list[str]]) -> None:
    """Whatever the mix: a caller gets an id exactly when its row was committed (under that
    id), and the error of its transaction otherwise; a bad row fails only its transaction."""

    async def main() -> tuple[Table, list[tuple[str, int | OSError]]]:
        table = Table()
        writer = GroupCommit(table.write)
        outcomes: list[tuple[str, int | OSError]] = []
        for w, wave in enumerate(waves):
            rows = [f"{kind}-{w}-{n}" if kind == "ok" else "bad" for n, kind in enumerate(wave)]
            results = await asyncio.gather(*(put(writer, row) for row in rows))
            outcomes.extend(zip(rows, results, strict=True))
        return table, outcomes

    table, outcomes = anyio.run(main)
    committed = {row for rows in table.transactions for row in rows}
    for row, result in outcomes:
        if isinstance(result, int):
            assert table.rows[result] == row
        else:
            assert row not in committed and str(result) == "disk full"
    assert set(table.rows.values()) == committed
    failed = [row for row, result in outcomes if isinstance(result, OSError)]
    assert all(row == "bad" for row in failed) or "bad" in failed


def test_a_writer_cancelled_mid_write_still_answers_the_others() -> None:
    async def main() -> tuple[Table, list[int | OSError]]:
        table = Table()
        writer = GroupCommit(table.write)
        table.gate.clear()
        leader = asyncio.ensure_future(put(writer, "r0"))
        await asyncio.sleep(0.01)
        others = [asyncio.ensure_future(put(writer, f"r{n}")) for n in range(1, 5)]
        await asyncio.sleep(0.01)
        leader.cancel()  # a native cancel: r0's write is abandoned, nobody is stranded
        await asyncio.sleep(0.01)
        table.gate.set()
        with anyio.fail_after(2):
            results = [await task for task in others]
        return table, results

    table, results = anyio.run(main)
    assert table.transactions[-1] == ["r1", "r2", "r3", "r4"]
    assert [table.rows[r] for r in results if isinstance(r, int)] == ["r1", "r2", "r3", "r4"]


def test_a_writer_cancelled_mid_write_leaves_no_caller_of_its_round_waiting() -> None:
    """Each other caller of the round gets its own row's id or a retryable ``StoreError``."""

    async def main() -> tuple[Table, list[int | BaseException]]:
        table = Table()
        writer = GroupCommit(table.write)
        table.gate.clear()
        tasks = [asyncio.ensure_future(writer.put(f"r{n}")) for n in range(3)]
        await asyncio.sleep(0.01)  # r0 writes [r0, r1, r2], held
        tasks[0].cancel()
        await asyncio.sleep(0.01)
        table.gate.set()
        with anyio.fail_after(2):
            return table, await asyncio.gather(*tasks[1:], return_exceptions=True)

    table, results = anyio.run(main)
    for n, result in enumerate(results, start=1):
        if isinstance(result, int):
            assert table.rows[result] == f"r{n}"
        else:
            assert isinstance(result, StoreError), result


@pytest.mark.postgres
def test_postgres_inbox_writes_share_transactions(fresh_postgres_url: str) -> None:
    async def main() -> tuple[list[int], int, dict[int, bytes]]:
        store = PostgresStore(fresh_postgres_url)
        await store.open()
        try:
            ids = await asyncio.gather(
                *(
                    store.inbox_put("hooks", f"body-{n}".encode(), {}, ref=f"r-{n}")
                    for n in range(100)
                )
            )
            pending = await store.inbox_pending("hooks", 1000)
            return list(ids), store.inbox_writer.commits, {i.id: i.payload for i in pending}
        finally:
            await store.close()

    ids, commits, stored = anyio.run(main)
    assert commits <= 10, f"{commits} transactions for 100 writes"
    assert [stored[new_id] for new_id in ids] == [f"body-{n}".encode() for n in range(100)]
