"""``dovetail test`` with a partner, golden files (``--update``), JUnit properties and
the Markdown evidence report (``--report``), on the project ``dovetail init`` creates."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import orjson
import pytest
from typer.testing import CliRunner

from dovetail.cli.app import app

runner = CliRunner()

RETRIED = """\
name: a paid order reaches the ERP after a 503 and a 429
input:
  message: {order_id: WS-7001, customer_name: Grace Hopper, email: grace@example.com,
            country: us, status: paid, total: "10.00", currency: USD,
            created_at: "2026-11-20T10:15:00Z"}
partner:
  script: {"/sales-orders": [503, 429, 201]}
expect:
  retries: %d
  partner_requests: 3
  duplicates: 0
  delivered_count: {erp: 1, warehouse: 1}
  golden: true
"""


@pytest.fixture
def scaffold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "proj"
    assert runner.invoke(app, ["init", str(target)]).exit_code == 0
    monkeypatch.chdir(target)
    return target


def test_the_scaffold_cases_pass_with_a_report(scaffold: Path) -> None:
    result = runner.invoke(app, ["test", "--report", "evidence.md"])
    assert result.exit_code == 0, result.output
    report = (scaffold / "evidence.md").read_text()
    assert "| Result | **PASSED**: 6 passed, 0 failed |" in report
    assert "| orders-to-erp | 1.0.0 | integration-team |" in report
    assert "Ada Lovelace" not in report and "Ada@Example.com" not in report
    assert '"customer_name": "***"' in report


def test_retries_golden_update_and_evidence(scaffold: Path) -> None:
    case = scaffold / "tests" / "orders-to-erp" / "retried.yaml"
    golden = case.with_name("retried.golden.json")
    case.write_text(RETRIED % 2)

    first = runner.invoke(app, ["test", "orders-to-erp", "--json"])
    assert first.exit_code == 3
    verdicts = {row["case"]: row for row in orjson.loads(first.output)}
    retried = verdicts["a paid order reaches the ERP after a 503 and a 429"]
    assert retried["failures"] == [
        "golden file tests/orders-to-erp/retried.golden.json is missing;"
        " `dovetail test --update` writes it"
    ]
    assert not golden.exists()

    updated = runner.invoke(app, ["test", "orders-to-erp", "--update"])
    assert updated.exit_code == 0, updated.output
    assert "updated golden file tests/orders-to-erp/retried.golden.json" in updated.output
    assert json.loads(golden.read_text())["erp"][0]["external_ref"] == "WS-7001"

    again = runner.invoke(app, ["test", "--junit", "junit.xml", "--report", "evidence.md"])
    assert again.exit_code == 0, again.output
    assert "updated golden file" not in again.output
    suite = ET.parse(scaffold / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    version = suite.find("properties/property[@name='flow_version']")
    assert version is not None and version.get("value") == "1.0.0"
    retried_case = suite.find(
        "testcase[@name='a paid order reaches the ERP after a 503 and a 429']"
    )
    assert retried_case is not None
    properties = {p.get("name"): p.get("value") for p in retried_case.iter("property")}
    assert properties == {"flow_version": "1.0.0", "retries": "2", "partner_requests": "3"}
    report = (scaffold / "evidence.md").read_text()
    assert "- partner: 3 requests, 1 accepted, 0 duplicates (sinks: erp)" in report
    assert "Grace Hopper" not in report and "grace@example.com" not in report

    case.write_text(RETRIED % 1)
    wrong = runner.invoke(app, ["test", "orders-to-erp", "--json"])
    assert wrong.exit_code == 3
    failures = [f for row in orjson.loads(wrong.output) for f in row["failures"]]
    assert failures == ["expected 1 retries, got 2"]


def test_a_golden_mismatch_prints_a_diff_until_updated(scaffold: Path) -> None:
    case = scaffold / "tests" / "orders-to-erp" / "retried.yaml"
    case.write_text(RETRIED % 2)
    assert runner.invoke(app, ["test", "orders-to-erp", "--update"]).exit_code == 0
    golden = case.with_name("retried.golden.json")
    golden.write_text(golden.read_text().replace('"RELEASED"', '"HELD"'))

    failed = runner.invoke(app, ["test", "orders-to-erp", "--report", "evidence.md"])
    assert failed.exit_code == 3
    assert '-      "erp_status": "HELD",' in failed.output
    assert '+      "erp_status": "RELEASED",' in failed.output
    report = (scaffold / "evidence.md").read_text()
    assert "### FAIL: a paid order reaches the ERP after a 503 and a 429" in report
    assert "```diff" in report and "grace@example.com" not in report
    assert "HELD" in golden.read_text()  # never rewritten without --update

    assert runner.invoke(app, ["test", "orders-to-erp", "--update"]).exit_code == 0
    assert runner.invoke(app, ["test", "orders-to-erp"]).exit_code == 0
