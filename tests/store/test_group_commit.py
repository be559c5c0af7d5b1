"""Group commit: confirmations that arrive together share one store transaction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

from dovetail.errors import StoreError
from dovetail.store.base import BatchRecord, Delivery
from dovetail.store.group_commit import GroupCommitter, merge_records
from dovetail.store.sqlite import SqliteStore


def _record(key: str) -> BatchRecord:
    return BatchRecord(flow="orders", deliveries=[Delivery("erp", key, f"m-{key}")])


def test_concurrent_confirmations_are_grouped_and_all_durable(tmp_path: Path) -> None:
    async def main() -> tuple[set[str], GroupCommitter]:
        store = SqliteStore(tmp_path / "s.db")
        await store.open()
        try:
            committer = GroupCommitter(store, "orders")
            async with anyio.create_task_group() as group:
                for i in range(200):
                    group.start_soon(committer.write, _record(f"K{i}"))
            keys = [f"K{i}" for i in range(200)]
            return await store.delivered_keys("orders", "erp", keys), committer
        finally:
            await store.close()

    recorded, committer = anyio.run(main)
    assert recorded == {f"K{i}" for i in range(200)}
    assert committer.records == 200
    # the first caller commits alone; the others accumulate behind it
    assert committer.transactions < 20


def test_a_failed_commit_fails_every_record_in_it(tmp_path: Path) -> None:
    class FullDisk(SqliteStore):
        async def settle_batch(self, record: Any) -> list[int]:
            await anyio.sleep(0.01)
            raise StoreError("disk full")

    failures: list[BaseException] = []

    async def main() -> None:
        store = FullDisk(tmp_path / "s.db")
        await store.open()
        try:
            committer = GroupCommitter(store, "orders")

            async def write(key: str) -> None:
                try:
                    await committer.write(_record(key))
                except StoreError as exc:
                    failures.append(exc)

            async with anyio.create_task_group() as group:
                for i in range(5):
                    group.start_soon(write, f"K{i}")
        finally:
            await store.close()

    anyio.run(main)
    assert len(failures) == 5


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.text(min_size=1, max_size=5), max_size=4), max_size=6))
def test_merging_keeps_every_entry_in_order(groups: list[list[str]]) -> None:
    records = [
        BatchRecord(flow="f", deliveries=[Delivery("s", k, k) for k in keys], unparked=[len(keys)])
        for keys in groups
    ]
    merged = merge_records("f", records)
    assert [d.key for d in merged.deliveries] == [k for keys in groups for k in keys]
    assert merged.unparked == [len(keys) for keys in groups]


def test_an_empty_record_returns_at_once_without_a_transaction(tmp_path: Path) -> None:
    async def main() -> GroupCommitter:
        store = SqliteStore(tmp_path / "s.db")
        await store.open()
        try:
            committer = GroupCommitter(store, "orders")
            await committer.write(BatchRecord(flow="orders"))
            await committer.write(_record("K1"))
            return committer
        finally:
            await store.close()

    committer = anyio.run(main)
    assert (committer.transactions, committer.records) == (1, 1)
