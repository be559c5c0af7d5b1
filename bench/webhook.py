"""Webhook benchmark: POST an order -> validate -> mapping sheet -> file sink, against peers.

Each server runs pinned to core 0 (``taskset``) and wrk loads it from core 1 with 32
connections for ``--seconds``; the same order body is posted to all of them, in the same run:

- ``dovetail``: ``dovetail run`` of an ``http`` source flow; every 202 is in the SQLite inbox,
  committed with ``synchronous=FULL`` (on disk), before it is sent;
- ``starlette``: the same work in plain Python under uvicorn (``webhook_peers.py``), no store;
- ``node-red``: the same work as a Node-RED flow, installed from the npm registry into
  ``bench/.node-red`` on first use.

A tool that is absent (wrk, taskset, npm) is skipped with a line saying so. Prints req/s and
p99 latency for each with the ratios, and merges the entries {name, value, unit, baseline,
ratio} into ``bench/results.json``.

    python bench/webhook.py [--seconds 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.batch_data import ORDER_SCHEMA, mapping_sheet_csv, write_orders_csv
from bench.webhook_peers import PATH, node_red_command, node_red_install

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".bench" / "webhook"
RESULTS = ROOT / "bench" / "results.json"
FLOW = f"""\
flow: hooks
version: 1.0.0
source:
  http: {{port: {{port}}, path: {PATH}}}
steps:
  - validate: {{schema: schemas/order.schema.json}}
  - map: {{sheet: mappings/orders.csv}}
sink:
  file: {{path: out/orders.jsonl, format: jsonl}}
"""
SERVER_CORE, LOAD_CORE = "0", "1"


def sample_order() -> bytes:
    """One valid order of the batch benchmark's data, as a JSON body."""
    path = WORK / "orders.csv"
    write_orders_csv(path, 1, seed=7)
    with path.open(encoding="utf-8", newline="") as stream:
        row = next(csv.DictReader(stream))
    return json.dumps(row).encode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pinned(command: list[str], core: str) -> list[str]:
    return ["taskset", "-c", core, *command] if shutil.which("taskset") else command


@contextlib.contextmanager
def serving(command: list[str], cwd: Path, port: int, body: bytes) -> Iterator[None]:
    """Run ``command`` until a POST of ``body`` to it is answered 202; stop it afterwards."""
    log = (WORK / f"server-{port}.log").open("wb")
    process = subprocess.Popen(pinned(command, SERVER_CORE), cwd=cwd, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while not answers_202(port, body):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not serve; see {log.name}")
            time.sleep(0.2)
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def answers_202(port: int, body: bytes) -> bool:
    request = (
        f"POST {PATH} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(request)
            return conn.recv(64).startswith(b"HTTP/1.1 202")
    except OSError:
        return False


def load(port: int, body: bytes, seconds: float, connections: int) -> dict[str, float]:
    """wrk against the server: req/s, p99 in ms and the count of non-202 answers."""
    script = WORK / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["content-type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body.decode())}\n"
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("P99_US %d\\n", latency:percentile(99)))\nend\n',
        encoding="utf-8",
    )
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", str(script)]
    command.append(f"http://127.0.0.1:{port}{PATH}")
    out = subprocess.run(pinned(command, LOAD_CORE), capture_output=True, text=True, check=True)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    p99 = re.search(r"P99_US (\d+)", out.stdout)
    if rate is None or p99 is None:
        raise RuntimeError(f"unexpected wrk output:\n{out.stdout}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
    errors = re.search(r"Socket errors: (.*)", out.stdout)
    return {
        "rps": float(rate.group(1)),
        "p99_ms": int(p99.group(1)) / 1000,
        "non_2xx": float(bad.group(1)) if bad else 0.0,
        "socket_errors": 1.0 if errors else 0.0,
    }


def dovetail_project() -> tuple[Path, int]:
    project = WORK / "dovetail"
    shutil.rmtree(project, ignore_errors=True)
    for folder in ("flows", "schemas", "mappings"):
        (project / folder).mkdir(parents=True)
    port = free_port()
    (project / "dovetail.yaml").write_text("project: webhook-bench\n", encoding="utf-8")
    (project / "flows" / "hooks.yaml").write_text(FLOW.replace("{port}", str(port)))
    (project / "schemas" / "order.schema.json").write_text(json.dumps(ORDER_SCHEMA))
    (project / "mappings" / "orders.csv").write_text(mapping_sheet_csv(), encoding="utf-8")
    return project, port


def measure(name: str, command: list[str], cwd: Path, port: int, args: Any) -> dict[str, float]:
    body = sample_order()
    with serving(command, cwd, port, body):
        load(port, body, 1, args.connections)  # warm-up
        result = load(port, body, args.seconds, args.connections)
    note = ""
    if result["non_2xx"] or result["socket_errors"]:
        note = f"  ({result['non_2xx']:.0f} non-2xx answers, socket errors)"
    print(f"  {name:<10} {result['rps']:>9,.0f} req/s   p99 {result['p99_ms']:6.1f} ms{note}")
    return result


def merge_results(entries: list[dict[str, Any]]) -> None:
    """Merge ``entries`` into ``bench/results.json`` by name (other benchmarks write it too)."""
    known: dict[str, dict[str, Any]] = {}
    if RESULTS.exists():
        with contextlib.suppress(ValueError):
            known = {entry["name"]: entry for entry in json.loads(RESULTS.read_text())}
    known.update({entry["name"]: entry for entry in entries})
    RESULTS.write_text(json.dumps(sorted(known.values(), key=lambda e: e["name"]), indent=2) + "\n")


def entry(name: str, value: float, unit: str, baseline: float | None) -> dict[str, Any]:
    """One ``results.json`` entry; ``baseline`` and ``ratio`` are null when it was skipped."""
    return {
        "name": name,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "ratio": ratio(value, baseline),
    }


def ratio(value: float, baseline: float | None) -> float | None:
    return round(value / baseline, 3) if baseline else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    print(f"webhook -> validate -> sheet -> file, wrk {args.connections} connections, server on"
          f" core {SERVER_CORE}, {args.seconds:g} s each")  # fmt: skip
    if shutil.which("wrk") is None:
        print("  webhook benchmark skipped: wrk is not installed (apt-get install wrk)")
        return
    if shutil.which("taskset") is None:
        print("  taskset is not installed: servers are not pinned to one core")
    WORK.mkdir(parents=True, exist_ok=True)
    print("  dovetail store: SQLite synchronous=FULL, group commit (each 202 on disk first)")
    parser_name = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop_name = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    print(f"  dovetail server: {parser_name} parser on {loop_name}")
    runs: dict[str, dict[str, float]] = {}
    project, port = dovetail_project()
    dovetail = [str(Path(sys.executable).with_name("dovetail")), "run", "flows/hooks.yaml"]
    runs["dovetail"] = measure("dovetail", dovetail, project, port, args)
    port = free_port()
    starlette = [sys.executable, str(ROOT / "bench" / "webhook_peers.py"), "--port", str(port)]
    starlette += ["--out", str(WORK / "starlette-out.jsonl")]
    runs["starlette"] = measure("starlette", starlette, WORK, port, args)
    missing = node_red_install()
    if missing is None:
        port = free_port()
        runs["node-red"] = measure("node-red", node_red_command(WORK, port), WORK, port, args)
    else:
        print(f"  node-red   skipped: {missing}")
    ours, red, plain = runs["dovetail"], runs.get("node-red"), runs["starlette"]
    red_rps = red["rps"] if red else None
    print(f"  ratio req/s: vs node-red {ratio(ours['rps'], red_rps) or '-'} (goal >= 4),"
          f" vs starlette {ratio(ours['rps'], plain['rps'])}; p99 {ours['p99_ms']:.1f} ms"
          " (goal <= 15)")  # fmt: skip
    red_p99 = red["p99_ms"] if red else None
    merge_results(
        [
            entry("webhook_req_per_s", ours["rps"], "req/s", red_rps),
            entry("webhook_p99", ours["p99_ms"], "ms", red_p99),
            entry("webhook_req_per_s_vs_starlette", ours["rps"], "req/s", plain["rps"]),
        ]
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
