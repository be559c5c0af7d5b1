"""Crash safety of the file source: per-file checkpoints, resume, final moves, watch mode."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import anyio

from dovetail.core.envelope import Envelope, Failure, SourcePosition

ROWS = "id,total\n" + "".join(f"{i},{i * 10}\n" for i in range(10))


def failure_of(envelope: Envelope) -> Failure:
    assert envelope.failure is not None
    return envelope.failure


def position_of(envelope: Envelope) -> SourcePosition:
    assert envelope.position is not None
    return envelope.position


async def checkpoint_of(kit: Any, ref: str) -> dict[str, Any] | None:
    store = kit.store()
    await store.open()
    try:
        value: dict[str, Any] | None = await store.get_checkpoint("test-flow", "file:" + ref)
        return value
    finally:
        await store.close()


def test_restart_after_crash_skips_exactly_the_settled_prefix(kit: Any) -> None:
    kit.write("inbox/orders.csv", ROWS)
    snippet = "file: {path: inbox/*.csv, after: {move_to: archive/}}"

    async def first_run() -> None:
        store = kit.store()
        await store.open()
        source = kit.source(snippet, store=store)
        envelopes = await kit.read(source)
        assert [e.payload["id"] for e in envelopes] == [str(i) for i in range(10)]
        # settled out of order; 3 and 6 are still in flight when the process dies
        for index in (5, 0, 2, 1, 4, 7, 8, 9):
            await envelopes[index].settlement.settle()
        await source.commit()
        await store.close()  # kill -9: the source is never closed

    async def second_run() -> list[Envelope]:
        store = kit.store()
        await store.open()
        source = kit.source(snippet, store=store)
        envelopes: list[Envelope] = await kit.read(source)
        await kit.settle(envelopes)
        await source.commit()
        await source.close()
        await store.close()
        return envelopes

    asyncio.run(first_run())
    checkpoint = asyncio.run(checkpoint_of(kit, "inbox/orders.csv"))
    assert checkpoint is not None
    assert checkpoint["records"] == 3
    assert checkpoint["done"] is False
    stat = (kit.project / "inbox/orders.csv").stat()
    assert (checkpoint["size"], checkpoint["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns)

    again = asyncio.run(second_run())
    assert [position_of(e).offset for e in again] == list(range(3, 10))
    assert [e.payload["id"] for e in again] == [str(i) for i in range(3, 10)]
    assert [position_of(e).line for e in again] == list(range(5, 12))
    assert not (kit.project / "inbox/orders.csv").exists()
    assert (kit.project / "archive/orders.csv").read_text() == ROWS
    assert asyncio.run(checkpoint_of(kit, "inbox/orders.csv")) is None


def test_one_checkpoint_write_per_changed_file_per_commit(kit: Any) -> None:
    kit.write("in/a.jsonl", '{"n": 1}\n{"n": 2}\n')
    kit.write("in/b.jsonl", '{"n": 3}\n')
    writes: list[tuple[str, dict[str, Any]]] = []

    async def scenario() -> None:
        store = kit.store()
        await store.open()
        original = store.put_checkpoint

        async def counting(flow: str, key: str, value: dict[str, Any]) -> None:
            writes.append((key, value))
            await original(flow, key, value)

        store.put_checkpoint = counting
        source = kit.source("file: {path: in/*.jsonl}", store=store)
        envelopes = await kit.read(source)
        await envelopes[0].settlement.settle()
        await source.commit()
        await source.commit()  # nothing moved since: no write
        assert [key for key, _ in writes] == ["file:in/a.jsonl"]
        await kit.settle(envelopes[1:])
        await source.commit()
        await source.close()
        await store.close()

    asyncio.run(scenario())
    assert [(key, value["records"], value["done"]) for key, value in writes] == [
        ("file:in/a.jsonl", 1, False),
        ("file:in/a.jsonl", 2, True),
        ("file:in/b.jsonl", 1, True),
    ]


def test_without_move_to_a_finished_file_is_not_read_again_unless_it_changes(kit: Any) -> None:
    path = kit.write("in/a.jsonl", '{"n": 1}\n{"n": 2}\n')

    async def run_once() -> list[Envelope]:
        store = kit.store()
        await store.open()
        source = kit.source("file: {path: in/*.jsonl}", store=store)
        envelopes: list[Envelope] = await kit.read(source)
        await kit.settle(envelopes)
        await source.close()
        await store.close()
        return envelopes

    assert len(asyncio.run(run_once())) == 2
    assert path.exists()
    assert asyncio.run(run_once()) == []
    with path.open("a") as stream:
        stream.write('{"n": 3}\n')
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert [e.payload["n"] for e in asyncio.run(run_once())] == [1, 2, 3]


def test_settled_file_moves_to_archive_and_a_name_clash_gets_a_timestamp(kit: Any) -> None:
    kit.write("inbox/orders.csv", ROWS)
    kit.write("archive/orders.csv", "older\n")

    async def scenario() -> None:
        source = kit.source("file: {path: inbox/*.csv, after: {move_to: archive}}")
        envelopes = await kit.read(source)
        await source.commit()
        assert (kit.project / "inbox/orders.csv").exists(), "not settled yet: not moved"
        await kit.settle(envelopes)
        await source.commit()
        await source.close()

    asyncio.run(scenario())
    archived = {p.name for p in (kit.project / "archive").iterdir()}
    assert "orders.csv" in archived
    (stamped,) = archived - {"orders.csv"}
    assert stamped.startswith("orders.")
    assert stamped.endswith("Z.csv")
    assert (kit.project / "archive" / stamped).read_text() == ROWS
    assert (kit.project / "archive/orders.csv").read_text() == "older\n"


def test_unreadable_file_moves_to_error_folder_and_good_file_to_archive(kit: Any) -> None:
    kit.write("in/good.json", '[{"id": 1}]')
    kit.write("in/bad.json", '{"id": ')
    snippet = "file: {path: in/*.json, after: {move_to: done/, on_error_move_to: error/}}"

    async def scenario() -> list[Envelope]:
        source = kit.source(snippet)
        envelopes: list[Envelope] = await kit.read(source)
        await kit.settle(envelopes)  # the runner dead-letters the failed one, then settles it
        await source.close()
        return envelopes

    envelopes = asyncio.run(scenario())
    assert [e.failure is not None for e in envelopes] == [True, False]
    assert (kit.project / "error/bad.json").exists()
    assert (kit.project / "done/good.json").exists()
    assert list((kit.project / "in").iterdir()) == []


def test_poison_records_do_not_send_the_file_to_the_error_folder(kit: Any) -> None:
    kit.write("in/a.csv", "a,b\n1,2\n3\n")
    snippet = "file: {path: in/*.csv, after: {move_to: done/, on_error_move_to: error/}}"

    async def scenario() -> None:
        source = kit.source(snippet)
        await kit.settle(await kit.read(source))
        await source.close()

    asyncio.run(scenario())
    assert (kit.project / "done/a.csv").exists()


def test_empty_file_is_finished_in_once_mode_without_any_batch(kit: Any) -> None:
    kit.write("in/empty.csv", "")
    kit.write("in/header-only.csv", "a,b\n")

    async def scenario() -> list[Envelope]:
        source = kit.source("file: {path: in/*.csv, after: {move_to: done/}}")
        envelopes: list[Envelope] = await kit.read(source)
        await source.close()
        return envelopes

    assert asyncio.run(scenario()) == []
    assert sorted(p.name for p in (kit.project / "done").iterdir()) == [
        "empty.csv",
        "header-only.csv",
    ]


def test_fully_settled_file_whose_commit_was_lost_is_moved_on_restart(kit: Any) -> None:
    path = kit.write("in/a.jsonl", '{"n": 1}\n{"n": 2}\n')
    stat = path.stat()

    async def scenario() -> list[Envelope]:
        store = kit.store()
        await store.open()
        value = {"records": 2, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "done": False}
        await store.put_checkpoint("test-flow", "file:in/a.jsonl", value)
        source = kit.source("file: {path: in/*.jsonl, after: {move_to: done}}", store=store)
        envelopes: list[Envelope] = await kit.read(source)
        await source.close()
        await store.close()
        return envelopes

    assert asyncio.run(scenario()) == []
    assert (kit.project / "done/a.jsonl").exists()


def test_checkpoint_of_a_different_file_version_is_ignored(kit: Any) -> None:
    kit.write("in/a.jsonl", '{"n": 1}\n{"n": 2}\n')

    async def scenario() -> list[Envelope]:
        store = kit.store()
        await store.open()
        value = {"records": 1, "size": 3, "mtime_ns": 1, "done": False}
        await store.put_checkpoint("test-flow", "file:in/a.jsonl", value)
        source = kit.source("file: {path: in/*.jsonl}", store=store)
        envelopes: list[Envelope] = await kit.read(source)
        await store.close()
        return envelopes

    assert [e.payload["n"] for e in asyncio.run(scenario())] == [1, 2]


def test_close_persists_progress_of_files_not_fully_settled(kit: Any) -> None:
    kit.write("in/a.jsonl", '{"n": 1}\n{"n": 2}\n{"n": 3}\n')

    async def scenario() -> None:
        store = kit.store()
        await store.open()
        source = kit.source("file: {path: in/*.jsonl, after: {move_to: done}}", store=store)
        envelopes = await kit.read(source)
        await kit.settle(envelopes[:2])
        await source.close()
        await store.close()

    asyncio.run(scenario())
    assert (kit.project / "in/a.jsonl").exists()
    checkpoint = asyncio.run(checkpoint_of(kit, "in/a.jsonl"))
    assert checkpoint is not None
    assert checkpoint["records"] == 2


def test_watch_mode_picks_up_files_that_arrive_later(kit: Any) -> None:
    kit.write("in/first.jsonl", '{"n": 1}\n')
    seen: list[Envelope] = []

    async def scenario() -> None:
        source = kit.source(
            "file: {path: in/*.jsonl, poll_interval: 20ms, after: {move_to: done}}", once=False
        )
        await source.open()
        arrived = [anyio.Event(), anyio.Event()]

        async def emit(batch: list[Envelope]) -> None:
            seen.extend(batch)
            await kit.settle(batch)
            await source.commit()  # as the runner does after each settled batch
            for event in arrived[: len(seen)]:
                event.set()

        async with anyio.create_task_group() as group:
            group.start_soon(source.run, emit)
            with anyio.fail_after(10):
                await arrived[0].wait()
                kit.write("in/second.jsonl", '{"n": 2}\n')
                await arrived[1].wait()
            group.cancel_scope.cancel()
        await source.close()

    asyncio.run(scenario())
    assert [e.payload["n"] for e in seen] == [1, 2]
    assert sorted(p.name for p in (kit.project / "done").iterdir()) == [
        "first.jsonl",
        "second.jsonl",
    ]


def test_watch_mode_leaves_files_younger_than_min_age(kit: Any) -> None:
    kit.write("in/fresh.jsonl", '{"n": 1}\n')
    seen: list[Envelope] = []

    async def scenario() -> None:
        source = kit.source(
            "file: {path: in/*.jsonl, poll_interval: 10ms, min_age: 1h}", once=False
        )
        await source.open()

        async def emit(batch: list[Envelope]) -> None:
            seen.extend(batch)

        with anyio.move_on_after(0.2):
            await source.run(emit)
        await source.close()

    asyncio.run(scenario())
    assert seen == []


def test_recursive_glob_does_not_reread_files_moved_into_its_folders(kit: Any) -> None:
    kit.write("in/a.jsonl", '{"n": 1}\n')
    kit.write("in/done/old.jsonl", '{"n": 0}\n')

    async def scenario() -> list[Envelope]:
        source = kit.source("file: {path: in/**/*.jsonl, after: {move_to: in/done}}")
        envelopes: list[Envelope] = await kit.read(source)
        await kit.settle(envelopes)
        await source.close()
        return envelopes

    assert [e.payload["n"] for e in asyncio.run(scenario())] == [1]
    assert (kit.project / "in/done/a.jsonl").exists()


def test_hidden_files_being_written_are_not_read(kit: Any) -> None:
    kit.write("in/.a.jsonl.1f2e.tmp", '{"n": 0}\n')
    kit.write("in/a.jsonl", '{"n": 1}\n')
    envelopes = asyncio.run(kit.read(kit.source("file: {path: in/*, format: jsonl}")))
    assert [e.payload["n"] for e in envelopes] == [1]
