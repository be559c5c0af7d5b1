"""``dovetail run`` in a pipe: whole tables (no 80-column cut), and dead-letter reasons grouped
by kind with a count and the first positions, not one line per malformed row."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from dovetail.cli.reasons import FIRST_POSITIONS, group_reasons, reason_kind

FLOW_NAME = "orders-from-the-web-shop-to-the-enterprise-resource-planning-system"
FLOW = f"""\
flow: {FLOW_NAME}
version: 1.0.0
source:
  file: {{path: inbox/*.csv}}
sink:
  file: {{path: outbox/orders.jsonl}}
"""
DOVETAIL = str(Path(sys.executable).parent / "dovetail")


def _run_piped(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"COLUMNS", "LINES"}}
    return subprocess.run(
        [DOVETAIL, *args], cwd=project, env=env, capture_output=True, text=True, timeout=120
    )


def test_run_in_a_pipe_groups_malformed_rows_and_keeps_tables_whole(project: Path) -> None:
    (project / "flows" / "orders.yaml").write_text(FLOW)
    (project / "inbox").mkdir()
    lines = ["order_id,total"]
    bad_lines = []
    for number in range(2, 602):
        if number % 3 == 0:
            lines.append(f"{number},1,extra")
            bad_lines.append(number)
        else:
            lines.append(f"{number},1")
    (project / "inbox" / "orders.csv").write_text("\n".join(lines) + "\n")

    done = _run_piped(project, "run", "--once")

    assert done.returncode == 3, done.stderr
    out = done.stdout.splitlines()
    assert any(len(line) > 100 and FLOW_NAME in line for line in out), done.stdout
    reason_rows = [line for line in out if "expected 2 fields, found 3" in line]
    assert len(reason_rows) == 1, done.stdout
    first = ", ".join(str(n) for n in bad_lines[:FIRST_POSITIONS])
    assert f"lines {first}, …" in reason_rows[0]
    assert f" {len(bad_lines)} " in reason_rows[0]
    assert FLOW_NAME in reason_rows[0]

    listed = _run_piped(project, "dlq", "list", "--limit", "1")
    row = next(line for line in listed.stdout.splitlines() if FLOW_NAME in line)
    assert "expected 2 fields, found 3" in row
    assert "inbox/orders.csv" in row and len(row) > 120, listed.stdout


kinds = st.sampled_from(
    [
        "expected 2 fields, found 3",
        "malformed CSV: unexpected end of data",
        "invalid JSON: unexpected character",
        "expected a JSON object, found array",
    ]
)


@given(
    st.lists(
        st.tuples(kinds, st.integers(min_value=1, max_value=10**6), st.integers(1, 5)),
        min_size=1,
        max_size=60,
    )
)
def test_grouping_keeps_every_count_and_lists_the_first_positions(
    entries: list[tuple[str, int, int]],
) -> None:
    reasons: Counter[str] = Counter()
    for kind, line, count in entries:
        reasons[f"line {line}: {kind}"] += count
    groups = group_reasons(reasons)

    assert sum(g.count for g in groups) == sum(reasons.values())
    assert {g.reason for g in groups} == {kind for kind, _, _ in entries}
    assert [g.count for g in groups] == sorted((g.count for g in groups), reverse=True)
    for group in groups:
        positions = sorted({line for kind, line, _ in entries if kind == group.reason})
        shown = ", ".join(str(p) for p in positions[:FIRST_POSITIONS])
        more = ", …" if len(positions) > FIRST_POSITIONS else ""
        word = "line" if len(positions) == 1 else "lines"
        assert group.where() == f"{word} {shown}{more}"


def test_a_parsers_own_position_is_not_part_of_the_kind() -> None:
    kind, word, at = reason_kind("line 9: invalid JSON: unexpected character: line 1 column 5")
    assert (kind, word, at) == ("invalid JSON: unexpected character", "line", 9)
    assert reason_kind("HTTP 422 from partner") == ("HTTP 422 from partner", None, None)
