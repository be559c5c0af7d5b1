"""The ``sftp`` sink against a real SFTP server: atomic uploads, formats, confinement."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import asyncssh
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.connectors.sftp.conftest import build, sftp_server

from dovetail.connectors.sftp.connection import SftpConnectError, remote_join
from dovetail.core.ack import Settlement
from dovetail.core.envelope import Envelope
from dovetail.errors import PermanentError, TransientError
from dovetail.safety.paths import PathEscapeError

Keys = tuple[asyncssh.SSHKey, asyncssh.SSHKey]


def envelopes(*payloads: Any) -> list[Envelope]:
    return [Envelope(payload=payload, settlement=Settlement()) for payload in payloads]


def test_each_message_is_uploaded_to_a_hidden_name_then_renamed_into_place(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        async with sftp_server(tmp_path / "server", keys) as server:
            raw = server.connection(
                folder="outgoing", filename='"orders/order-" & order_id & ".json"'
            )
            sink = build("sink", raw, tmp_path)
            await sink.open()
            results = await sink.write(envelopes({"order_id": 7}, {"order_id": 8}))
            assert results == [None, None]
            await sink.close()
            folder = server.root / "outgoing/orders"
            assert sorted(os.listdir(folder)) == ["order-7.json", "order-8.json"]
            assert orjson.loads((folder / "order-7.json").read_bytes()) == {"order_id": 7}
            # the final names were never opened for writing: they appeared by rename only
            opened = [path for path, _ in server.log.opened]
            assert len(opened) == 2
            assert all(Path(path).name.startswith(".order-") for path in opened)
            assert all(path.endswith(".tmp") for path in opened)
            assert sorted(Path(new).name for _, new in server.log.renamed) == [
                "order-7.json",
                "order-8.json",
            ]

    asyncio.run(scenario())


def test_a_failed_upload_leaves_no_file_under_the_final_name_and_is_retried(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        async with sftp_server(tmp_path / "server", keys) as server:
            (server.root / "out").mkdir()
            (server.root / "out/order-1.json").write_text('{"old": true}')
            server.log.fail_writes_after = 10  # the server fails half-way through the file
            raw = server.connection(folder="out", filename='"order-" & order_id & ".json"')
            sink = build("sink", raw, tmp_path)
            await sink.open()
            payload = {"order_id": 1, "note": "x" * 200}
            [result] = await sink.write(envelopes(payload))
            assert isinstance(result, TransientError)
            assert "disk quota exceeded" in result.reason
            # the previous complete file is untouched and no temporary file is left behind
            assert os.listdir(server.root / "out") == ["order-1.json"]
            assert (server.root / "out/order-1.json").read_text() == '{"old": true}'

            server.log.fail_writes_after = None
            assert await sink.write(envelopes(payload)) == [None]
            assert orjson.loads((server.root / "out/order-1.json").read_bytes()) == payload
            assert os.listdir(server.root / "out") == ["order-1.json"]
            await sink.close()

    asyncio.run(scenario())


def test_per_batch_mode_writes_one_csv_file_and_dead_letters_rows_that_do_not_fit(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        async with sftp_server(tmp_path / "server", keys) as server:
            raw = server.connection(
                mode="per_batch",
                format="csv",
                filename='"batch-" & first.order_id & "-" & count & ".csv"',
            )
            sink = build("sink", raw, tmp_path)
            await sink.open()
            batch = envelopes(
                {"order_id": 1, "total": 10},
                {"order_id": 2, "total": {"nested": 1}},
                {"order_id": 3, "total": 30},
            )
            results = await sink.write(batch)
            assert results[0] is None and results[2] is None
            assert isinstance(results[1], PermanentError)
            await sink.close()
            assert (server.root / "batch-1-2.csv").read_bytes() == (
                b"order_id,total\r\n1,10\r\n3,30\r\n"
            )

    asyncio.run(scenario())


def test_xml_and_jsonl_formats(tmp_path: Path, keys: Keys) -> None:
    async def scenario() -> None:
        async with sftp_server(tmp_path / "server", keys) as server:
            xml = build(
                "sink",
                server.connection(format="xml", record="Order", filename='"o" & id & ".xml"'),
                tmp_path,
            )
            lines = build(
                "sink",
                server.connection(mode="per_batch", format="jsonl", filename='"all.jsonl"'),
                tmp_path,
            )
            for sink in (xml, lines):
                await sink.open()
                assert await sink.write(envelopes({"id": 1}, {"id": 2})) == [None, None]
                await sink.close()
            assert b"<Order>" in (server.root / "o1.xml").read_bytes()
            assert (server.root / "all.jsonl").read_bytes() == b'{"id":1}\n{"id":2}\n'

    asyncio.run(scenario())


def test_a_file_name_leaving_the_folder_is_dead_lettered_and_nothing_is_written(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        async with sftp_server(tmp_path / "server", keys) as server:
            (server.root / "out").mkdir()
            raw = server.connection(folder="out", filename="name")
            sink = build("sink", raw, tmp_path)
            await sink.open()
            results = await sink.write(
                envelopes({"name": "../escape.json"}, {"name": "/etc/x"}, {"name": ""})
            )
            assert all(isinstance(result, PermanentError) for result in results)
            await sink.close()
            assert server.log.opened == []
            assert not (server.root / "escape.json").exists()

    asyncio.run(scenario())


def test_the_sink_refuses_a_server_whose_host_key_is_not_pinned(tmp_path: Path, keys: Keys) -> None:
    async def scenario() -> None:
        async with sftp_server(tmp_path / "server", keys) as server:
            other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
            sink = build(
                "sink", server.connection(host_key=other.strip(), filename='"a.json"'), tmp_path
            )
            with pytest.raises(SftpConnectError, match="not trusted"):
                await sink.open()
            assert server.log.opened == []

    asyncio.run(scenario())


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab./\\\x00 ", min_size=1, max_size=12))
def test_remote_join_never_leaves_the_folder(name: str) -> None:
    try:
        joined = remote_join("/srv/out", name, what="filename")
    except PathEscapeError:
        return
    assert joined == "/srv/out" or joined.startswith("/srv/out/")
