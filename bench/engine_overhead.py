"""Engine overhead per record: the flow's own cost beyond its reader and its user's steps.

The same generated CSV is read twice in one run:

- **plain loop**: the ``file`` source's reader (``read_records``) over the file, each record's
  payload passed to the same pass-through function, the result dropped;
- **flow**: ``file`` source -> ``python`` step calling that pass-through function -> a sink
  that confirms every message and keeps nothing, on a fresh SQLite store, ``run --once``.

The overhead is the difference per record (µs): envelopes, ids, steps, routing, delivery,
settlement, journal, acks and checkpoints. The CPU time of the process (every thread) is
printed beside it: on a busy machine it shows the engine's own work without the waits. Each
side runs ``--repeat`` times and the fastest
run counts (the machine is shared; the fastest run is the least disturbed). The figure goes to
``bench/results.json`` as ``engine_overhead_per_record`` (value: µs of overhead per record;
baseline: µs per record of the plain loop; ratio: flow time / plain-loop time).

    python bench/engine_overhead.py [--rows 100000] [--repeat 3] [--batch-size 500] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.batch_data import write_orders_csv
from bench.batch_pipeline import record_results
from dovetail.api import run_flow_async
from dovetail.config.loader import load_flow, load_project
from dovetail.connectors.file.readers import read_records
from dovetail.connectors.file.source_config import FileSourceConfig
from dovetail.core.component import Sink
from dovetail.core.envelope import Envelope
from dovetail.store.sqlite import SqliteStore

WORK = Path(__file__).resolve().parents[1] / ".bench" / "engine"
GOAL_US = 5.0
FLOW = """\
flow: engine-overhead
version: 1.0.0
source:
  file: {{path: data/orders.csv, format: csv}}
steps:
  - python: {{function: passthrough:passthrough}}
sink:
  file: {{path: out/unused.jsonl}}
runtime: {{batch_size: {batch_size}, workers: 2}}
"""
PASSTHROUGH = '''\
"""The pass-through step of the engine overhead benchmark."""


def passthrough(payload):
    return payload
'''


def passthrough(payload: Any) -> Any:
    """The plain loop's copy of the flow's step."""
    return payload


class DiscardSink:
    """Confirms every message at once and keeps nothing."""

    name = "discard"

    async def open(self) -> None:
        return None

    async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
        return [None] * len(batch)

    async def close(self) -> None:
        return None


def make_project(rows: int, batch_size: int) -> Path:
    shutil.rmtree(WORK, ignore_errors=True)
    for folder in ("flows", "data", "out"):
        (WORK / folder).mkdir(parents=True)
    (WORK / "dovetail.yaml").write_text("project: engine-overhead\n")
    write_orders_csv(WORK / "data" / "orders.csv", rows, seed=7, invalid_ratio=0.0)
    (WORK / "passthrough.py").write_text(PASSTHROUGH)
    (WORK / "flows" / "engine-overhead.yaml").write_text(FLOW.format(batch_size=batch_size))
    return WORK


def plain_loop(project: Path) -> tuple[float, float, int]:
    """Seconds (wall, CPU of the process) to read every record with the source's reader and
    pass it through, and the records read."""
    options = FileSourceConfig(path="data/orders.csv", format="csv").reader_options()
    started, cpu = time.perf_counter(), time.process_time()
    count = 0
    for record in read_records(project / "data" / "orders.csv", options):
        passthrough(record.payload)
        count += 1
    return time.perf_counter() - started, time.process_time() - cpu, count


async def run_flow(project: Path) -> tuple[float, float, int]:
    """Seconds (wall, CPU of the process: every thread) for one ``run --once`` of the flow on
    a fresh store, and the records received."""
    shutil.rmtree(project / ".dovetail", ignore_errors=True)
    loaded = load_flow(project / "flows" / "engine-overhead.yaml", load_project(project))
    store = SqliteStore(project / ".dovetail" / "state.db")
    await store.open()
    sinks: dict[str, Sink] = {name: DiscardSink() for name in loaded.sinks}
    try:
        started, cpu = time.perf_counter(), time.process_time()
        summary = await run_flow_async(loaded, store=store, once=True, sinks=sinks)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await store.close()
    return seconds, cpu, summary.received


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--profile", action="store_true", help="cProfile one flow run instead")
    args = parser.parse_args()
    project = make_project(args.rows, args.batch_size)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        asyncio.run(run_flow(project))
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(35)
        return 0
    plains = [plain_loop(project) for _ in range(args.repeat)]
    flows = [asyncio.run(run_flow(project)) for _ in range(args.repeat)]
    rows = plains[0][2]
    if any(f[2] != rows for f in flows):
        print(f"the flow received {[f[2] for f in flows]} records, the plain loop read {rows}")
        return 1
    plain_us = min(p[0] for p in plains) / rows * 1e6
    flow_us = min(f[0] for f in flows) / rows * 1e6
    overhead = flow_us - plain_us
    cpu_overhead = (min(f[1] for f in flows) - min(p[1] for p in plains)) / rows * 1e6
    print(
        f"engine overhead, {rows:,} records, batch {args.batch_size}, best of {args.repeat}:"
        f" plain loop {plain_us:.2f} µs/record   flow {flow_us:.2f} µs/record"
        f"   overhead {overhead:.2f} µs/record (goal <= {GOAL_US:g});"
        f" in CPU time {cpu_overhead:.2f} µs/record"
    )
    record_results(
        [
            {
                "name": "engine_overhead_per_record",
                "value": round(overhead, 2),
                "unit": "µs/record",
                "baseline": round(plain_us, 2),
                "ratio": round(flow_us / plain_us, 2),
            }
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
