"""Reconciliation benchmark: Dovetail against a polars in-memory join and plain-Python dicts.

All three compare the same two generated CSV files (``--rows`` per side, with planted
missing, extra, duplicate and mismatched rows), each in its own process so that peak RSS
(``resource.getrusage``) is measured separately, in the same run. The polars baseline reads
both files whole and joins them in memory; the dict baseline reads both into dicts keyed by
the key. Both are fast and grow with the data; Dovetail's engine spills to disk instead.
Prints seconds, rows/s, peak RSS and the ratios, checks that the three agree on the counts,
and merges ``reconcile_*`` entries into ``bench/results.json`` (other entries are kept).

    python bench/reconcile.py [--rows 1000000]   # --rows 10000000 shows memory stays flat
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

RESULTS = Path(__file__).resolve().parent / "results.json"

_DOVETAIL = """
import resource, sys, json
from dovetail.reconcile import run_reconciliation
from dovetail.reconcile.engine import engine_installed
report = run_reconciliation(sys.argv[1], examples=5)
counts = {
    "missing": report.missing_in_target, "extra": report.extra_in_target,
    "mismatched": report.mismatched_records,
    "dups": report.duplicate_source_keys + report.duplicate_target_keys,
}
engine = "duckdb" if engine_installed() else "sort-merge"
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"counts": counts, "rss": rss, "engine": engine}))
"""

_POLARS = """
import resource, sys, json
import polars as pl
s = pl.read_csv(sys.argv[1], infer_schema=False)
t = pl.read_csv(sys.argv[2], infer_schema=False)
dups = sum(
    side.group_by("order_id").len().filter(pl.col("len") > 1).height for side in (s, t)
)
joined = s.join(t, on="order_id", how="full", suffix="_t", coalesce=False)
missing = joined.filter(pl.col("order_id_t").is_null()).height
extra = joined.filter(pl.col("order_id").is_null()).height
both = joined.filter(pl.col("order_id").is_not_null() & pl.col("order_id_t").is_not_null())
differs = (
    ((pl.col("amount").cast(pl.Float64) - pl.col("amount_t").cast(pl.Float64)).abs() > 0.01)
    | (pl.col("email").str.to_lowercase() != pl.col("email_t").str.to_lowercase())
    | (pl.col("status") != pl.col("status_t"))
)
mismatched = both.filter(differs).height
counts = {"missing": missing, "extra": extra, "mismatched": mismatched, "dups": dups}
print(json.dumps({"counts": counts, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

_DICTS = """
import csv, resource, sys, json
from decimal import Decimal

def load(path):
    rows, dups = {}, set()
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            key = row.pop("order_id")
            if key in rows:
                dups.add(key)
            rows[key] = row
    return rows, dups

source, sdups = load(sys.argv[1])
target, tdups = load(sys.argv[2])
missing = sum(1 for k in source if k not in target)
extra = sum(1 for k in target if k not in source)
mismatched = 0
for key, row in source.items():
    other = target.get(key)
    if other is None or key in sdups or key in tdups:
        continue
    if abs(Decimal(row["amount"]) - Decimal(other["amount"])) > Decimal("0.01") or (
        row["email"].lower() != other["email"].lower() or row["status"] != other["status"]
    ):
        mismatched += 1
counts = {"missing": missing, "extra": extra, "mismatched": mismatched,
          "dups": len(sdups) + len(tdups)}
print(json.dumps({"counts": counts, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def write_sides(root: Path, rows: int) -> None:
    """Two CSV files: the target lacks every 100,000th row, changes some, repeats some."""
    with (root / "source.csv").open("w") as s, (root / "target.csv").open("w") as t:
        s.write("order_id,amount,email,status\n")
        t.write("order_id,amount,email,status\n")
        for i in range(rows):
            line = f"{i},{i % 997}.25,user{i}@example.com,new\n"
            s.write(line)
            if i % 100_000 == 7:
                continue
            if i % 100_000 == 11:
                line = f"{i},{i % 997}.75,user{i}@example.com,new\n"
            t.write(line)
            if i % 250_000 == 3:
                t.write(line)
        t.write(f"{rows + 1},1.00,x@example.com,new\n")
    (root / "dovetail.yaml").write_text("project: bench\n")
    (root / "orders.yaml").write_text(
        "source: {csv: source.csv}\ntarget: {csv: target.csv}\nkey: order_id\n"
        "fields: {amount: {tolerance: 0.01}, email: {normalize: lower}}\n"
    )


def timed(args: list[str]) -> tuple[float, dict[str, Any]]:
    """Seconds taken by a child process, and the JSON it printed."""
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{args[2].split()[0] if len(args) > 2 else args}: failed\n{done.stderr}")
    return time.perf_counter() - started, json.loads(done.stdout)


def record_results(entries: list[dict[str, Any]]) -> None:
    """Merge ``entries`` into ``bench/results.json`` (an entry replaces one of its name)."""
    kept: list[dict[str, Any]] = []
    if RESULTS.is_file():
        names = {e["name"] for e in entries}
        kept = [e for e in orjson.loads(RESULTS.read_bytes()) if e.get("name") not in names]
    RESULTS.write_bytes(orjson.dumps([*kept, *entries], option=orjson.OPT_INDENT_2) + b"\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per side")
    parser.add_argument(
        "--no-baselines", action="store_true", help="run Dovetail only (for --rows 10000000)"
    )
    options = parser.parse_args()
    runs: dict[str, tuple[float, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as folder:
        root = Path(folder)
        write_sides(root, options.rows)
        files = [str(root / "source.csv"), str(root / "target.csv")]
        runs["dovetail"] = timed([sys.executable, "-c", _DOVETAIL, str(root / "orders.yaml")])
        if not options.no_baselines:
            try:
                import polars  # noqa: F401
            except ImportError:
                print("polars baseline skipped: polars is not installed (pip install polars)")
            else:
                runs["polars"] = timed([sys.executable, "-c", _POLARS, *files])
            runs["dicts"] = timed([sys.executable, "-c", _DICTS, *files])
    rows = 2 * options.rows
    print(f"reconcile: {options.rows:,} rows per side ({rows:,} compared)")
    print(f"dovetail engine: {runs['dovetail'][1]['engine']}")
    for name, (seconds, result) in runs.items():
        mib = result["rss"] / 1024
        print(
            f"  {name:<9} {seconds:7.2f} s {rows / seconds:>12,.0f} rows/s"
            f"  peak RSS {mib:7.1f} MiB  counts {result['counts']}"
        )
    ours_s, ours = runs["dovetail"]
    ours_mib = ours["rss"] / 1024
    suffix = "" if options.rows == 1_000_000 else f"_{options.rows}"
    entries: list[dict[str, Any]] = [
        {  # against the budget of issue 12: at most 300 MiB
            "name": f"reconcile_peak_rss{suffix}",
            "value": round(ours_mib, 1),
            "unit": "MiB",
            "baseline": 300,
            "ratio": round(ours_mib / 300, 2),
        }
    ]
    agree = True
    for name in ("polars", "dicts"):
        if name not in runs:
            continue
        base_s, base = runs[name]
        agree = agree and base["counts"] == ours["counts"]
        speed = base_s / ours_s
        base_mib = base["rss"] / 1024
        memory = ours_mib / base_mib
        print(f"  speed ratio dovetail/{name}: {speed:.2f}   memory ratio: {memory:.2f}")
        entries.append(
            {
                "name": f"reconcile_rows_per_s_vs_{name}{suffix}",
                "value": round(rows / ours_s),
                "unit": "rows/s",
                "baseline": round(rows / base_s),
                "ratio": round(speed, 2),
            }
        )
        entries.append(
            {
                "name": f"reconcile_peak_rss_vs_{name}{suffix}",
                "value": round(ours_mib, 1),
                "unit": "MiB",
                "baseline": round(base_mib, 1),
                "ratio": round(memory, 2),
            }
        )
    record_results(entries)
    if not agree:
        print("the counts differ between Dovetail and a baseline")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
