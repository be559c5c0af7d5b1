"""The ``reconcile`` step: a scheduled flow runs a reconciliation and reports the outcome."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from dovetail import load_flow, run_flow
from dovetail.errors import ConfigError

from .support import write_jsonl

FLOW = """\
flow: orders-reconciliation
version: 1.0.0
source:
  schedule: {{cron: "0 6 * * *"}}
steps:
  - reconcile: {{config: reconcile/orders.yaml, output: "reports/orders-{{date}}.html"{extra}}}
sink:
  file: {{path: outbox/summary.jsonl}}
"""


def _project(project: Path, threshold: float, extra: str = "") -> Path:
    (project / "data").mkdir()
    write_jsonl(project / "data" / "s.jsonl", [{"id": i, "v": i} for i in range(10)])
    write_jsonl(project / "data" / "t.jsonl", [{"id": i, "v": i} for i in range(1, 10)])
    (project / "reconcile").mkdir()
    (project / "reconcile" / "orders.yaml").write_text(
        "source: {jsonl: data/s.jsonl}\ntarget: {jsonl: data/t.jsonl}\nkey: id\n"
        f"threshold: {threshold}\n"
    )
    flow = project / "flows" / "orders-reconciliation.yaml"
    flow.write_text(FLOW.format(extra=extra))
    return flow


def test_scheduled_reconciliation_writes_report_and_summary(project: Path) -> None:
    flow = _project(project, 90)
    summary = run_flow(flow, once=True)
    assert summary.dead_lettered == 0
    lines = (project / "outbox" / "summary.jsonl").read_bytes().splitlines()
    result = orjson.loads(lines[0])
    assert (result["missing_in_target"], result["equal"], result["passed"]) == (1, 9, True)
    assert result["report"].startswith("reports/orders-")
    assert "missing in target" in (project / result["report"]).read_text()


def test_below_threshold_dead_letters_the_tick(project: Path) -> None:
    flow = _project(project, 95)
    summary = run_flow(flow, once=True)
    assert summary.dead_lettered == 1
    assert any("accuracy 90.00% is below the threshold 95%" in r for r in summary.reasons)
    assert not (project / "outbox" / "summary.jsonl").exists()


def test_below_threshold_can_pass_the_summary_on(project: Path) -> None:
    flow = _project(project, 95, extra=", on_below_threshold: pass")
    summary = run_flow(flow, once=True)
    assert summary.dead_lettered == 0
    result = orjson.loads((project / "outbox" / "summary.jsonl").read_bytes().splitlines()[0])
    assert result["passed"] is False


def test_lint_reports_problems_inside_the_reconciliation_file(project: Path) -> None:
    flow = _project(project, 95)
    (project / "reconcile" / "orders.yaml").write_text("source: {jsonl: data/s.jsonl}\nkey: id\n")
    with pytest.raises(ConfigError) as caught:
        load_flow(flow, strict=False)
    messages = [str(p) for p in caught.value.problems]
    assert any(
        m.startswith("reconcile/orders.yaml:1:1: missing required key 'target'") for m in messages
    ), messages
