"""A million rows per side: exactly the planted differences are found, in bounded memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

ROWS = 1_000_000
MISSING = {17, 250_003, 999_999}
MISMATCHED = {5, 500_000, 777_777}
DUPLICATED_SOURCE = {42}
DUPLICATED_TARGET = {123_456, 654_321}
EXTRA = {ROWS + 1, ROWS + 7}

RUN = """
import re, sys, orjson
from pathlib import Path
from dovetail.reconcile import run_reconciliation
report = run_reconciliation(sys.argv[1], examples=10)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forking process (a test
# runner that has grown), while VmHWM belongs to this program's own memory
status = Path("/proc/self/status").read_text()
peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
print(orjson.dumps({**report.as_dict(), "peak_rss_kib": peak}).decode())
"""


def write_sides(root: Path) -> None:
    with (root / "source.csv").open("w") as s, (root / "target.csv").open("w") as t:
        s.write("order_id,amount,email,status\n")
        t.write("order_id,amount,email,status\n")
        for i in range(ROWS):
            line = f"{i},{i % 997}.25,user{i}@example.com,new\n"
            s.write(line)
            if i in DUPLICATED_SOURCE:
                s.write(line)
            if i in MISSING:
                continue
            if i in MISMATCHED:
                t.write(f"{i},{i % 997}.75,USER{i}@example.com,new\n")
            else:
                t.write(line)
            if i in DUPLICATED_TARGET:
                t.write(line)
        for i in EXTRA:
            t.write(f"{i},1.00,x@example.com,new\n")


@pytest.mark.slow
def test_million_rows_find_exactly_the_planted_differences(tmp_path: Path) -> None:
    write_sides(tmp_path)
    (tmp_path / "dovetail.yaml").write_text("project: million\n")
    (tmp_path / "orders.yaml").write_text(
        "source: {csv: source.csv}\ntarget: {csv: target.csv}\nkey: order_id\n"
        "fields: {amount: {tolerance: 0.01}, email: {normalize: lower}}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(tmp_path / "orders.yaml")],
        capture_output=True,
        check=True,
        timeout=300,
    )
    report = orjson.loads(done.stdout)
    assert report["source_records"] == ROWS + len(DUPLICATED_SOURCE)
    assert report["target_records"] == ROWS - len(MISSING) + len(DUPLICATED_TARGET) + len(EXTRA)
    assert {int(e["key"]) for e in report["examples"]["missing"]} == MISSING
    assert {int(e["key"]) for e in report["examples"]["extra"]} == EXTRA
    assert {int(e["key"]) for e in report["examples"]["duplicate_source"]} == DUPLICATED_SOURCE
    assert {int(e["key"]) for e in report["examples"]["duplicate_target"]} == DUPLICATED_TARGET
    assert {int(e["key"]) for e in report["examples"]["mismatch"]} == MISMATCHED
    assert report["mismatches_by_field"] == {"amount": len(MISMATCHED)}  # email: lower
    expected_equal = ROWS - len(MISSING) - len(MISMATCHED) - 1 - len(DUPLICATED_TARGET)
    assert report["equal"] == expected_equal
    # constant memory: both sides hold ~100 MB of records; the process stays far below that
    assert report["peak_rss_kib"] < 400 * 1024, report["peak_rss_kib"]
