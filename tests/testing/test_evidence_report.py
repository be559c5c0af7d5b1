"""The Markdown evidence report: provenance, masked inputs and outputs, verdicts, totals."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from dovetail.config.loader import load_flow, load_project
from dovetail.testing.cases import discover_cases
from dovetail.testing.evidence import EvidenceWriter, GitState, git_state
from dovetail.testing.harness import CaseResult, run_case

PASSING = """\
name: a named customer's order is delivered
input:
  message: {order_id: E-1, total: 12, email: grace.hopper@example.com,
            customer: {name: Grace Hopper, tier: gold}}
expect:
  delivered_count: {erp: 1, audit: 1}
"""

FAILING = """\
name: a wrong expectation
input:
  messages:
    - {order_id: E-2, total: 3, email: alan@example.com, customer: {name: Alan Turing}}
expect:
  delivered:
    audit: [{order_id: E-2, total: 4, email: alan@example.com, customer: {name: Alan Turing}}]
"""


def _results(root: Path) -> list[CaseResult]:
    flow = load_flow(root / "flows" / "orders.yaml", strict=False)

    async def run_all() -> list[CaseResult]:
        return [await run_case(flow, case) for case in discover_cases(root, "orders")]

    return anyio.run(run_all)


def test_the_report_masks_values_and_states_each_verdict(
    kit_project: Path, write_case: Any
) -> None:
    write_case(kit_project, "a-passing", PASSING)
    write_case(kit_project, "b-failing", FAILING)
    results = _results(kit_project)
    flow = load_flow(kit_project / "flows" / "orders.yaml", strict=False)
    report = EvidenceWriter(
        load_project(kit_project),
        [flow],
        results,
        now=datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
        git=GitState(commit="0123abcd", dirty=True),
    ).render()

    for secret in ("grace.hopper@example.com", "Grace Hopper", "alan@example.com", "Alan Turing"):
        assert secret not in report
    assert '"name": "***"' in report and '"email": "***"' in report
    assert '"tier": "gold"' in report  # only the declared paths and detected values are masked
    assert "| Project | kit-shop |" in report
    assert "| Date | 2026-11-30T09:00:00+00:00 |" in report
    assert "| Git commit | 0123abcd (with uncommitted changes) |" in report
    assert "| Result | **FAILED**: 1 passed, 1 failed |" in report
    assert "| orders | 2.3.0 | order-team | flows/orders.yaml | 2 | 1 | 1 |" in report
    assert "### PASS: a named customer's order is delivered" in report
    assert "### FAIL: a wrong expectation" in report
    assert "- audit[0]: fields differ: total" in report
    assert report.count("Result: **PASS**") == 1 and report.count("Result: **FAIL**") == 1
    assert report.rstrip().endswith("- cases: 2\n- passed: 1\n- failed: 1")


def test_an_input_file_is_identified_by_its_digest(kit_project: Path, write_case: Any) -> None:
    data = kit_project / "tests" / "orders" / "orders.csv"
    data.parent.mkdir(parents=True)
    data.write_text("order_id,total\nF-1,3\n", encoding="utf-8")
    write_case(
        kit_project, "file", "input: {file: orders.csv}\nexpect: {delivered_count: {erp: 1}}\n"
    )
    flow = load_flow(kit_project / "flows" / "orders.yaml", strict=False)
    report = EvidenceWriter(load_project(kit_project), [flow], _results(kit_project)).render()
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    assert f"- input file: `tests/orders/orders.csv` (sha256 {digest})" in report


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_state_names_the_commit_and_uncommitted_changes(tmp_path: Path) -> None:
    assert git_state(tmp_path).commit is None

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    git("init", "-q")
    (tmp_path / "dovetail.yaml").write_text("project: x\n")
    git("add", "dovetail.yaml")
    git("commit", "-q", "-m", "first")
    head = git("rev-parse", "HEAD")
    assert git_state(tmp_path) == GitState(commit=head, dirty=False)
    (tmp_path / "dovetail.yaml").write_text("project: y\n")
    assert git_state(tmp_path) == GitState(commit=head, dirty=True)
