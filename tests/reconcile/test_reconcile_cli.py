"""``dovetail reconcile``: exit codes, flags for the simple case, report formats, errors."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from dovetail.cli.app import app

from .support import write_csv, write_jsonl

runner = CliRunner()

CONFIG = """\
name: orders
source: {csv: data/orders.csv}
target: {jsonl: data/erp.jsonl}
key: [order_id]
fields:
  amount: {tolerance: 0.01}
  email: {normalize: [lower, strip]}
threshold: 99.5
examples: 1
"""


@pytest.fixture
def orders(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (project / "data").mkdir()
    rows = [
        {"order_id": str(i), "amount": f"{i}.00", "email": f"U{i}@x.com "} for i in range(1, 11)
    ]
    write_csv(project / "data" / "orders.csv", rows, ["order_id", "amount", "email"])
    target = [{"order_id": i, "amount": i + 0.004, "email": f"u{i}@x.com"} for i in range(1, 11)]
    target[2]["email"] = "<script>alert(1)</script>"
    target[3]["email"] = "other|pipe"
    write_jsonl(project / "data" / "erp.jsonl", target)
    (project / "reconcile").mkdir()
    (project / "reconcile" / "orders.yaml").write_text(CONFIG)
    monkeypatch.chdir(project)
    return project


def test_below_threshold_exits_3_and_counts_are_exact(orders: Path) -> None:
    result = runner.invoke(app, ["reconcile", "orders", "--json"])
    assert result.exit_code == 3, result.output
    report = orjson.loads(result.output)
    assert report["field_mismatches"] == 2
    assert report["accuracy"] == 80.0
    assert report["passed"] is False
    assert len(report["examples"]["mismatch"]) == 1  # examples capped, counts exact


def test_threshold_flag_overrides_the_file_and_exits_0(orders: Path) -> None:
    result = runner.invoke(app, ["reconcile", "reconcile/orders.yaml", "--threshold", "80"])
    assert result.exit_code == 0, result.output
    assert "PASSED: accuracy 80.00% (threshold 80%)" in result.output


def test_flags_alone_describe_a_simple_reconciliation(orders: Path) -> None:
    args = ["reconcile", "--source", "data/orders.csv", "--target", "data/erp.jsonl"]
    args += ["-k", "order_id", "--tolerance", "amount=0.01", "--normalize", "email=lower,strip"]
    args += ["--ignore", "email", "--format", "markdown"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "**PASSED: accuracy 100.00% (threshold 100%)**" in result.output


def test_html_and_markdown_reports_escape_values(orders: Path) -> None:
    html_out = orders / "out" / "report.html"
    result = runner.invoke(app, ["reconcile", "orders", "--output", str(html_out)])
    assert result.exit_code == 3
    page = html_out.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "1 of 2 shown" in page
    md = runner.invoke(app, ["reconcile", "orders", "--examples", "5", "--format", "markdown"])
    assert "other\\|pipe" in md.output
    assert "\\<script\\>" in md.output


def test_bad_yaml_reports_path_line_col_and_exits_2(orders: Path) -> None:
    (orders / "reconcile" / "bad.yaml").write_text(
        "source: {csv: data/orders.csv}\n"
        "target: {jsonl: data/missing.jsonl}\n"
        "key: [order_id]\n"
        "fields:\n"
        "  amount: {tolerance: -1}\n"
        "threshhold: 99\n"
    )
    result = runner.invoke(app, ["reconcile", "bad"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert any(
        line.startswith("reconcile/bad.yaml:2:17: ") and "file not found" in line for line in lines
    ), lines
    assert any(line.startswith("reconcile/bad.yaml:5:23: ") for line in lines), lines
    assert any(
        line.startswith("reconcile/bad.yaml:6:1: ") and "did you mean 'threshold'" in line
        for line in lines
    ), lines


def test_yaml_syntax_error_is_located(orders: Path) -> None:
    (orders / "reconcile" / "broken.yaml").write_text("source: {csv: [\nkey: x\n")
    result = runner.invoke(app, ["reconcile", "broken"])
    assert result.exit_code == 2
    assert result.output.startswith("reconcile/broken.yaml:")
    assert "YAML syntax error" in result.output


def test_usage_errors_exit_2_without_traceback(orders: Path) -> None:
    result = runner.invoke(app, ["reconcile", "--source", "data/orders.csv"])
    assert result.exit_code == 2
    assert "--target, --key" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["reconcile", "nothing-here"])
    assert result.exit_code == 2
    assert "no such reconciliation file or name" in result.output


def test_unreadable_side_exits_1(orders: Path) -> None:
    (orders / "data" / "erp.jsonl").unlink()
    args = ["reconcile", "--source", "data/orders.csv", "--target", "sqlite:///data/none.db"]
    result = runner.invoke(app, [*args, "--target-query", "SELECT 1", "-k", "order_id"])
    assert result.exit_code == 1
    assert "does not exist" in result.output
