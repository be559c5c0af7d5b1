"""The ``sftp`` source against a real SFTP server: formats, archive after settle, error
folder, checkpoint resume, host key checking."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from tests.connectors.sftp.conftest import PASSWORD, build, drain, sftp_server

from dovetail.connectors.sftp.connection import SftpConnectError
from dovetail.core.envelope import Envelope, SourcePosition
from dovetail.store.sqlite import SqliteStore

Keys = tuple[asyncssh.SSHKey, asyncssh.SSHKey]
ROWS = "id,total\n" + "".join(f"{i},{i * 10}\n" for i in range(10))
AFTER = {"move_to": "archive/", "on_error_move_to": "error/"}


def position_of(envelope: Envelope) -> SourcePosition:
    assert envelope.position is not None
    return envelope.position


async def settle(envelopes: list[Envelope]) -> None:
    for envelope in envelopes:
        await envelope.settlement.settle()


def test_reads_csv_and_json_files_and_archives_each_only_after_its_records_settle(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        async with sftp_server(tmp_path / "server", keys) as server:
            server.put("data/inbox/a.csv", "id,total\n1,10\n2,20\n")
            server.put("data/inbox/b.json", '[{"id": 3}, {"id": 4}]')
            server.put("data/inbox/.c.csv.part", "id\n9\n")  # an upload in progress
            raw = server.connection(folder="data", path="inbox/*.csv", after=AFTER)
            csv_source = build("source", raw, tmp_path)
            rows = await drain(csv_source)
            assert [e.payload for e in rows] == [
                {"id": "1", "total": "10"},
                {"id": "2", "total": "20"},
            ]
            assert [(position_of(e).kind, position_of(e).ref) for e in rows] == [
                ("sftp", "inbox/a.csv"),
                ("sftp", "inbox/a.csv"),
            ]
            assert [position_of(e).line for e in rows] == [2, 3]
            await rows[1].settlement.settle()
            await csv_source.commit()
            assert (server.root / "data/inbox/a.csv").exists()  # record 0 is still in flight
            await rows[0].settlement.settle()
            await csv_source.commit()
            assert not (server.root / "data/inbox/a.csv").exists()
            assert (server.root / "data/archive/a.csv").read_text() == "id,total\n1,10\n2,20\n"
            await csv_source.close()

            json_source = build("source", {**raw, "path": "inbox/*.json"}, tmp_path)
            docs = await drain(json_source)
            assert [e.payload for e in docs] == [{"id": 3}, {"id": 4}]
            await settle(docs)
            await json_source.close()  # the final commit moves the file
            assert (server.root / "data/archive/b.json").exists()
            assert (server.root / "data/inbox/.c.csv.part").exists()

    asyncio.run(scenario())


def test_unparseable_file_is_dead_lettered_and_moved_to_the_error_folder(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        async with sftp_server(tmp_path / "server", keys) as server:
            server.put("in/bad.json", '{"id": 1,')
            server.put("in/good.json", '{"id": 2}')
            source = build("source", server.connection(path="in/*.json", after=AFTER), tmp_path)
            envelopes = await drain(source)
            bad = [e for e in envelopes if e.failure is not None]
            good = [e for e in envelopes if e.failure is None]
            assert [e.payload for e in good] == [{"id": 2}]
            assert len(bad) == 1
            assert bad[0].failure is not None
            assert "invalid JSON document" in bad[0].failure.reason
            assert bad[0].payload["file"] == "in/bad.json"
            await settle(envelopes)
            await source.close()
            assert (server.root / "error/bad.json").read_text() == '{"id": 1,'
            assert (server.root / "archive/good.json").exists()
            assert not list((server.root / "in").iterdir())

    asyncio.run(scenario())


def test_restart_after_a_failure_mid_file_skips_exactly_the_settled_prefix(
    tmp_path: Path, keys: Keys
) -> None:
    store_path = tmp_path / "project" / "state.db"
    project = tmp_path / "project"
    project.mkdir()

    async def scenario() -> None:
        async with sftp_server(tmp_path / "server", keys) as server:
            server.put("in/orders.csv", ROWS)
            raw = server.connection(path="in/*.csv", after=AFTER)

            store = SqliteStore(store_path)
            await store.open()
            source = build("source", raw, project, store=store, batch_size=4)
            first = await drain(source)
            assert [e.payload["id"] for e in first] == [str(i) for i in range(10)]
            for index in (5, 0, 2, 1, 4, 7, 8, 9):  # 3 and 6 never settle: the process dies
                await first[index].settlement.settle()
            await source.commit(force=True)
            checkpoint = await store.get_checkpoint("test-flow", "sftp:in/orders.csv")
            assert checkpoint is not None
            assert (checkpoint["records"], checkpoint["done"]) == (3, False)
            await store.close()  # kill -9: the source is never closed
            source._disconnect()

            store = SqliteStore(store_path)
            await store.open()
            source = build("source", raw, project, store=store)
            again = await drain(source)
            assert [position_of(e).offset for e in again] == list(range(3, 10))
            assert [e.payload["id"] for e in again] == [str(i) for i in range(3, 10)]
            assert (server.root / "in/orders.csv").exists()
            await settle(again)
            await source.close()
            assert (server.root / "archive/orders.csv").read_text() == ROWS
            assert await store.get_checkpoint("test-flow", "sftp:in/orders.csv") is None
            await store.close()

    asyncio.run(scenario())


def test_without_archive_folder_a_finished_file_is_not_read_again(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> list[list[Any]]:
        seen: list[list[Any]] = []
        async with sftp_server(tmp_path / "server", keys) as server:
            server.put("in/a.jsonl", '{"n": 1}\n{"n": 2}\n')
            store = SqliteStore(tmp_path / "state.db")
            await store.open()
            for _ in range(2):
                source = build(
                    "source", server.connection(path="in/*.jsonl"), tmp_path, store=store
                )
                envelopes = await drain(source)
                seen.append([e.payload for e in envelopes])
                await settle(envelopes)
                await source.close()
            await store.close()
        return seen

    assert asyncio.run(scenario()) == [[{"n": 1}, {"n": 2}], []]


def test_password_login_and_project_known_hosts_file(tmp_path: Path, keys: Keys) -> None:
    async def scenario() -> list[Any]:
        async with sftp_server(tmp_path / "server", keys) as server:
            server.put("in/a.jsonl", '{"n": 1}\n')
            line = server.host_key.export_public_key().decode().strip()
            (tmp_path / "known_hosts").write_text(f"[127.0.0.1]:{server.port} {line}\n")
            raw = server.connection(path="in/*.jsonl", known_hosts="known_hosts")
            del raw["private_key"], raw["host_key"]
            raw["password"] = PASSWORD
            source = build("source", raw, tmp_path)
            envelopes = await drain(source)
            await source.close()
            return [e.payload for e in envelopes]

    assert asyncio.run(scenario()) == [{"n": 1}]


def test_a_host_key_other_than_the_pinned_one_is_refused(tmp_path: Path, keys: Keys) -> None:
    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()

    async def scenario() -> None:
        async with sftp_server(tmp_path / "server", keys) as server:
            server.put("in/a.jsonl", '{"n": 1}\n')
            raw = server.connection(path="in/*.jsonl", host_key=impostor.strip())
            source = build("source", raw, tmp_path)
            with pytest.raises(SftpConnectError, match=r"host key .* is not trusted"):
                await source.open()
            await source.close()
            assert (server.root / "in/a.jsonl").exists()

    asyncio.run(scenario())


def test_a_wrong_password_is_refused_without_echoing_it(tmp_path: Path, keys: Keys) -> None:
    async def scenario() -> None:
        async with sftp_server(tmp_path / "server", keys) as server:
            raw = server.connection(path="in/*.jsonl", password="wrong-guess")
            del raw["private_key"]
            source = build("source", raw, tmp_path)
            with pytest.raises(SftpConnectError, match="login refused") as caught:
                await source.open()
            assert "wrong-guess" not in str(caught.value)
            await source.close()

    asyncio.run(scenario())


def test_insecure_mode_connects_without_a_host_key_only_when_asked(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> list[Any]:
        async with sftp_server(tmp_path / "server", keys) as server:
            server.put("in/a.jsonl", '{"n": 1}\n')
            raw = server.connection(path="in/*.jsonl", insecure_skip_host_key_check=True)
            del raw["host_key"]
            source = build("source", raw, tmp_path)
            envelopes = await drain(source)
            await source.close()
            return [e.payload for e in envelopes]

    assert asyncio.run(scenario()) == [{"n": 1}]
