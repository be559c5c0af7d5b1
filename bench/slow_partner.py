"""Latency benchmark: orders to a partner that answers in 44 ms and fails 30% of requests.

2,000 orders go from a CSV file through the ``http`` sink to the fault-injecting partner
(``dovetail.testing.partner``) answering every request after 44 ms, 30% of them with a 503,
500 or 429 (``Retry-After: 1``), all retried. The figure is the end-to-end latency of each
message, from its creation when the file source read it (the time in its UUIDv7 id) to its
``delivered`` journal event, as ``dovetail kpi`` reports it: p50 and p99.

The baseline is the same job in the same run against the same partner without faults, so
the ratio says what the faults cost; the partner's own answer time is printed too. Results
go to ``bench/results.json`` as ``{name, value, unit, baseline, ratio}`` entries (entries of
other benchmarks are kept).

    python bench/slow_partner.py [--orders 2000] [--ratio 0.3] [--latency 0.044]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dovetail.api import run_flow_async
from dovetail.config.loader import load_flow, load_project
from dovetail.observability.kpi import collect_kpis
from dovetail.store.sqlite import SqliteStore
from dovetail.testing.partner import PartnerServer

WORK = Path(__file__).resolve().parents[1] / ".bench" / "slow-partner"
RESULTS = Path(__file__).resolve().parent / "results.json"
FLOW = """\
flow: orders-to-partner
version: 1.0.0
source:
  file: {{path: data/orders.csv, format: csv}}
sink:
  http:
    url: {url}/sales-orders
    concurrency: 8
    timeout: 3s
delivery:
  idempotency_key: order_id
  retry: {{attempts: 10, initial: 500ms, max: 30s}}
"""


def make_project(orders: int, url: str) -> Path:
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "flows").mkdir(parents=True)
    (WORK / "data").mkdir()
    (WORK / "dovetail.yaml").write_text("project: bench-slow-partner\n")
    (WORK / "flows" / "orders-to-partner.yaml").write_text(FLOW.format(url=url))
    with (WORK / "data" / "orders.csv").open("w") as out:
        out.write("order_id,total,country\n")
        out.writelines(f"SO-{i:06d},{i % 997}.50,NL\n" for i in range(orders))
    return WORK


async def run_job(orders: int, partner: PartnerServer) -> dict[str, Any]:
    """The job on a fresh store until every order is settled: latency percentiles, counts and
    wall time. Messages still parked when a ``run --once`` ends are sent by the next run,
    started when the first of them is due (as a scheduled job would)."""
    project = make_project(orders, partner.url)
    loaded = load_flow(project / "flows" / "orders-to-partner.yaml", load_project(project))
    store = SqliteStore(project / ".dovetail" / "state.db")
    await store.open()
    delivered = dead_lettered = parked = retries = runs = 0
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            summary = await run_flow_async(loaded, store=store, once=True)
            runs += 1
            delivered += sum(summary.delivered.values())
            dead_lettered += summary.dead_lettered
            parked += summary.parked
            retries += summary.retries
            waiting = await store.parked(loaded.name)
            if not waiting:
                break
            due = min(m.next_attempt_at for m in waiting)
            await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
        seconds = loop.time() - started
        kpis = await collect_kpis(store, flow=loaded.name)
    finally:
        await store.close()
    (flow,) = kpis.flows
    answers = [
        (r.answered_at - r.time) * 1000 for r in partner.requests("/sales-orders") if r.status
    ]
    return {
        "p50": flow.latency_ms["p50"],
        "p99": flow.latency_ms["p99"],
        "delivered": delivered,
        "dead_lettered": dead_lettered,
        "parked": parked,
        "retries": retries,
        "runs": runs,
        "seconds": seconds,
        "answer_ms": statistics.median(answers) if answers else None,
    }


def record_results(entries: list[dict[str, Any]]) -> None:
    """Merge ``entries`` into ``bench/results.json`` (an entry replaces one of its name)."""
    kept: list[dict[str, Any]] = []
    if RESULTS.is_file():
        names = {e["name"] for e in entries}
        kept = [e for e in orjson.loads(RESULTS.read_bytes()) if e.get("name") not in names]
    RESULTS.write_bytes(orjson.dumps([*kept, *entries], option=orjson.OPT_INDENT_2) + b"\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--ratio", type=float, default=0.3, help="share of failed requests")
    parser.add_argument("--latency", type=float, default=0.044, help="partner answer time, s")
    args = parser.parse_args()

    with PartnerServer(latency=args.latency, retry_after=1) as partner:
        clean = asyncio.run(run_job(args.orders, partner))
    with PartnerServer(latency=args.latency, retry_after=1) as partner:
        partner.faults(ratio=args.ratio, kinds=[503, 500, 429], seed=44)
        faulty = asyncio.run(run_job(args.orders, partner))

    for label, run in (("no faults (baseline)", clean), (f"{args.ratio:.0%} faults", faulty)):
        print(
            f"{label:<22} p50 {run['p50']:>9,.0f} ms   p99 {run['p99']:>9,.0f} ms   "
            f"{run['delivered']} delivered, {run['dead_lettered']} dead-lettered,"
            f" {run['parked']} parked, {run['retries']} retries, {run['runs']} run(s)"
            f" in {run['seconds']:.1f} s;"
            f" partner answers in {run['answer_ms']:.0f} ms (median)"
        )
    entries = [
        {
            "name": f"slow_partner_latency_{q}",
            "value": round(faulty[q], 1),
            "unit": "ms",
            "baseline": round(clean[q], 1),
            "ratio": round(faulty[q] / clean[q], 2),
        }
        for q in ("p50", "p99")
    ]
    for entry in entries:
        print(
            f"{entry['name']}: {entry['value']:,.0f} ms vs {entry['baseline']:,.0f} ms"
            f" without faults, ratio {entry['ratio']:.2f}"
        )
    record_results(entries)
    print(f"ratio = latency with faults / latency of the same job without faults; {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
