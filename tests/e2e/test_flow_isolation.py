"""One request, or one flow's crash, never stops the other flows of a real ``dovetail run``.

Each test starts the ``dovetail`` console script on a project of two flows: an ``api`` flow (an
integer path parameter) or a flow whose source cannot reach its database, beside a flow reading
CSV files that must keep delivering the files dropped while the other one fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
import pytest

from dovetail.testing.crash import dovetail_executable, listening

HUGE = "99999999999999999999999999"

OPENAPI = """\
openapi: 3.1.0
info: {title: Orders, version: 1.0.0}
paths:
  /orders/{order_id}:
    get:
      operationId: getOrder
      parameters:
        - {name: order_id, in: path, required: true, schema: {type: integer}}
      responses:
        "200":
          description: the order
          content:
            application/json:
              schema: {type: object}
"""

API_FLOW = """\
flow: orders-api
version: 1.0.0
source:
  api: {{openapi: schemas/orders.yaml, operation: getOrder, port: {port}, timeout: 10s}}
sink:
  file: {{path: out/orders.jsonl, format: jsonl}}
delivery: {{retry: {{attempts: 1}}}}
"""

UNREACHABLE_FLOW = """\
flow: broken
version: 1.0.0
source:
  sql:
    url: postgresql://postgres@127.0.0.1:{port}/test
    query: SELECT 1 AS x WHERE 1 > :watermark
    watermark: {{column: x, initial: 0}}
sink:
  file: {{path: out/broken.jsonl, format: jsonl}}
"""

FILE_FLOW = """\
flow: files
version: 1.0.0
source:
  file: {path: in/*.csv, format: csv, poll_interval: 0.2s}
sink:
  file: {path: out/files.jsonl, format: jsonl}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_project(root: Path, flows: dict[str, str]) -> Path:
    for folder in ("flows", "schemas", "out", "in"):
        (root / folder).mkdir(exist_ok=True)
    (root / "dovetail.yaml").write_text("project: isolation\n")
    (root / "schemas" / "orders.yaml").write_text(OPENAPI)
    for name, text in flows.items():
        (root / "flows" / f"{name}.yaml").write_text(text)
    return root


def dovetail(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(dovetail_executable()), *args],
        cwd=project,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )


@contextmanager
def running(project: Path, *ports: int) -> Iterator[subprocess.Popen[str]]:
    """``dovetail run`` (every flow) until the block ends, then SIGTERM."""
    log = (project / "run.log").open("w")
    process = subprocess.Popen(
        [str(dovetail_executable()), "run"],
        cwd=project,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not all(listening(port) for port in ports):
            assert process.poll() is None, (project / "run.log").read_text()
            assert time.monotonic() < deadline, "dovetail run did not start listening"
            time.sleep(0.05)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def drop_file(project: Path, n: int) -> None:
    """A CSV file of one row, appearing whole (written aside, then renamed into ``in/``)."""
    aside = project / f"{n}.part"
    aside.write_text(f"id,total\n{n},{n * 10}\n")
    aside.rename(project / "in" / f"{n}.csv")


def restarts(project: Path) -> int:
    return (project / "run.log").read_text().count('"flow restarting after a crash"')


def wait_for_lines(path: Path, count: int, process: subprocess.Popen[str]) -> list[object]:
    deadline = time.monotonic() + 20
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return [orjson.loads(line) for line in lines]
        assert process.poll() is None, "dovetail run exited"
        assert time.monotonic() < deadline, f"{path.name} has {len(lines)} of {count} lines"
        time.sleep(0.05)


def test_a_huge_integer_path_parameter_is_delivered_whole_and_other_flows_keep_working(
    tmp_path: Path,
) -> None:
    api_port = free_port()
    project = make_project(
        tmp_path, {"orders-api": API_FLOW.format(port=api_port), "files": FILE_FLOW}
    )
    with running(project, api_port) as process:
        drop_file(project, 1)
        wait_for_lines(project / "out" / "files.jsonl", 1, process)
        huge = httpx.get(f"http://127.0.0.1:{api_port}/orders/{HUGE}", timeout=15)
        assert huge.status_code == 200, huge.text
        wait_for_lines(project / "out" / "orders.jsonl", 1, process)
        (line,) = (project / "out" / "orders.jsonl").read_text().splitlines()
        assert json.loads(line) == {"order_id": int(HUGE)}  # every digit, not a float
        for n in (2, 3):
            drop_file(project, n)
        delivered = wait_for_lines(project / "out" / "files.jsonl", 3, process)
        assert sorted(row["id"] for row in delivered) == ["1", "2", "3"]  # type: ignore[index]
        small = httpx.get(f"http://127.0.0.1:{api_port}/orders/12", timeout=15)
        assert small.status_code == 200, small.text
        assert process.poll() is None, (project / "run.log").read_text()
    listed = dovetail(project, "dlq", "list", "--json")
    assert orjson.loads(listed.stdout) == [], listed.stdout + listed.stderr


def test_a_crashing_flow_is_restarted_while_the_others_keep_working(tmp_path: Path) -> None:
    """The api flow's port is taken by another program: its source fails at every start."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = int(squatter.getsockname()[1])
        project = make_project(
            tmp_path, {"orders-api": API_FLOW.format(port=port), "files": FILE_FLOW}
        )
        with running(project) as process:
            dropped = 0
            deadline = time.monotonic() + 60
            while restarts(project) < 2 or dropped < 3:  # files keep flowing meanwhile
                assert time.monotonic() < deadline, (project / "run.log").read_text()
                drop_file(project, dropped)
                dropped += 1
                time.sleep(0.5)
            rows = wait_for_lines(project / "out" / "files.jsonl", dropped, process)
            assert len(rows) == dropped
            assert process.poll() is None, (project / "run.log").read_text()
    output = (project / "run.log").read_text()
    assert output.count('"flow restarting after a crash"') >= 2, output
    assert process.returncode == 1, output
    assert "flow orders-api failed (restarted" in output
    assert "in use" in output


def test_with_once_a_failed_flow_exits_1_and_the_others_finish(tmp_path: Path) -> None:
    project = make_project(
        tmp_path, {"broken": UNREACHABLE_FLOW.format(port=free_port()), "files": FILE_FLOW}
    )
    drop_file(project, 1)
    drop_file(project, 2)
    result = dovetail(project, "run", "--once", "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    summaries = {s["flow"]: s for s in orjson.loads(result.stdout)}
    assert summaries["files"]["delivered"] == {"sink": 2}
    assert summaries["files"]["error"] is None
    assert "cannot reach the database" in summaries["broken"]["error"]
    assert (project / "out" / "files.jsonl").read_text().count("\n") == 2


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test talks to 127.0.0.1 directly, whatever proxy the environment sets."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
