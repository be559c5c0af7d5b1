"""Reconciliation benchmark: Dovetail's sort-merge against a plain-Python dict comparison.

Both compare the same two generated CSV files (``--rows`` per side, with planted missing,
extra, duplicate and mismatched rows), each in its own process so that peak RSS
(``resource.getrusage``) is measured separately. The baseline reads both files into dicts
keyed by the key and compares them: fast, but its memory grows with the data. The output is
rows/s and peak RSS for both, and the ratios between them.

    python bench/reconcile.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_DOVETAIL = """
import resource, sys, json
from dovetail.reconcile import run_reconciliation
report = run_reconciliation(sys.argv[1], examples=5)
counts = report.counts()
print(json.dumps({"counts": counts, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

_BASELINE = """
import csv, resource, sys, json
from decimal import Decimal

def load(path):
    rows, dups = {}, 0
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            key = row.pop("order_id")
            if key in rows:
                dups += 1
            rows[key] = row
    return rows, dups

source, sdups = load(sys.argv[1])
target, tdups = load(sys.argv[2])
missing = sum(1 for k in source if k not in target)
extra = sum(1 for k in target if k not in source)
mismatched = 0
for key, row in source.items():
    other = target.get(key)
    if other is None:
        continue
    if abs(Decimal(row["amount"]) - Decimal(other["amount"])) > Decimal("0.01") or (
        row["email"].lower() != other["email"].lower() or row["status"] != other["status"]
    ):
        mismatched += 1
counts = {"missing": missing, "extra": extra, "mismatched": mismatched, "dups": sdups + tdups}
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


def timed(args: list[str]) -> tuple[float, dict[str, object]]:
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, check=True, text=True)
    return time.perf_counter() - started, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as folder:
        root = Path(folder)
        write_sides(root, options.rows)
        base_s, base = timed(
            [sys.executable, "-c", _BASELINE, str(root / "source.csv"), str(root / "target.csv")]
        )
        ours_s, ours = timed([sys.executable, "-c", _DOVETAIL, str(root / "orders.yaml")])
    rows = 2 * options.rows
    base_rss, ours_rss = float(str(base["rss"])) / 1024, float(str(ours["rss"])) / 1024
    print(f"rows compared (both sides): {rows:,}")
    print(f"baseline (dicts):  {rows / base_s:>10,.0f} rows/s  peak RSS {base_rss:7.1f} MiB")
    print(f"dovetail reconcile:{rows / ours_s:>10,.0f} rows/s  peak RSS {ours_rss:7.1f} MiB")
    print(f"speed ratio (dovetail/baseline): {base_s / ours_s:.2f}")
    print(f"memory ratio (dovetail/baseline): {ours_rss / base_rss:.2f}")
    print(f"baseline counts: {base['counts']}")
    print(f"dovetail counts: {ours['counts']}")


if __name__ == "__main__":
    main()
