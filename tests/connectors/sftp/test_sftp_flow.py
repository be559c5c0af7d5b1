"""A flow from the ``sftp`` source to the ``sftp`` sink, run by the real runner."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import orjson
import pytest
from tests.connectors.sftp.conftest import PASSWORD, USER, SftpServer, sftp_server

from dovetail.api import run_flow

FLOW = """\
flow: partner-orders
version: 1.0.0
source:
  sftp:
    host: 127.0.0.1
    port: {port}
    username: {user}
    password: {password}
    known_hosts: known_hosts
    folder: partner
    path: outgoing/*.csv
    after: {{move_to: archive/, on_error_move_to: error/}}
sink:
  sftp:
    host: 127.0.0.1
    port: {port}
    username: {user}
    password: {password}
    known_hosts: known_hosts
    folder: erp/incoming
    filename: '"order-" & order_id & ".json"'
delivery:
  idempotency_key: order_id
runtime: {{batch_size: 2}}
"""


@pytest.fixture
def server(tmp_path: Path, keys: tuple[asyncssh.SSHKey, asyncssh.SSHKey]) -> Iterator[SftpServer]:
    """The SFTP server on its own event loop in a thread (``run_flow`` runs its own loop)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    manager = sftp_server(tmp_path / "server", keys)
    running = asyncio.run_coroutine_threadsafe(manager.__aenter__(), loop).result(10)
    try:
        yield running
    finally:
        asyncio.run_coroutine_threadsafe(manager.__aexit__(None, None, None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_orders_travel_from_one_sftp_folder_to_another_and_the_file_is_archived(
    project: Path, server: SftpServer
) -> None:
    line = server.host_key.export_public_key().decode().strip()
    (project / "known_hosts").write_text(f"[127.0.0.1]:{server.port} {line}\n")
    flow = project / "flows/partner-orders.yaml"
    flow.write_text(FLOW.format(port=server.port, user=USER, password=PASSWORD))
    server.put("partner/outgoing/orders.csv", "order_id,total\n1,10\n2,20,x\n3,30\n")

    summary = run_flow(flow)

    assert summary.dead_lettered == 1  # the row with a third field
    incoming = server.root / "erp/incoming"
    assert sorted(p.name for p in incoming.iterdir()) == ["order-1.json", "order-3.json"]
    assert orjson.loads((incoming / "order-3.json").read_bytes()) == {
        "order_id": "3",
        "total": "30",
    }
    assert (server.root / "partner/archive/orders.csv").exists()
    assert list((server.root / "partner/outgoing").iterdir()) == []
    assert run_flow(flow).received == 0
