"""`dovetail env diff A B`: configuration deltas between two environments, secrets hidden;
`dovetail lint --env E` requires every variable to be defined."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from dovetail.cli.app import app

runner = CliRunner()

TEST_ENV = """\
vars: {region: eu-west, erp_host: erp-test.example.com, legacy_flag: true}
flows:
  orders-to-erp:
    runtime: {batch_size: 100}
    sinks:
      warehouse:
        sql: {url: "postgresql://report:test-pass@db-test/warehouse"}
"""
PROD_ENV = """\
vars: {region: eu-west, erp_host: erp.example.com, archive_days: 30}
flows:
  orders-to-erp:
    runtime: {batch_size: 500, workers: 4}
    delivery: {retry: {attempts: 8, initial: 1s, max: 60s}}
    sinks:
      warehouse:
        sql: {url: "postgresql://report:pr0d-pass@db-prod/warehouse"}
"""


@pytest.fixture
def scaffold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "proj"
    assert runner.invoke(app, ["init", str(target)]).exit_code == 0
    (target / "environments" / "test.yaml").write_text(TEST_ENV)
    (target / "environments" / "prod.yaml").write_text(PROD_ENV)
    monkeypatch.chdir(target)
    return target


def test_json_lists_variable_and_flow_setting_deltas(scaffold: Path) -> None:
    result = runner.invoke(app, ["env", "diff", "test", "prod", "--json"])
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.output)
    assert report["variables"] == {
        "added": {"archive_days": 30},
        "removed": {"legacy_flag": True},
        "changed": {"erp_host": {"from": "erp-test.example.com", "to": "erp.example.com"}},
    }
    settings = report["flows"]["orders-to-erp"]
    assert settings["runtime.batch_size"] == {"from": 100, "to": 500}
    assert settings["runtime.workers"] == {"from": 2, "to": 4}
    assert settings["delivery.retry.attempts"] == {"from": 5, "to": 8}
    assert settings["sinks.warehouse.sql.url"] == {"from": "***", "to": "***"}
    assert "webhook-orders" not in report["flows"]
    assert "pass" not in result.output


def test_markdown_is_ready_for_release_notes(scaffold: Path) -> None:
    result = runner.invoke(app, ["env", "diff", "test", "prod"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "## Configuration changes: test -> prod"
    assert "| archive_days | added | (unset) | `30` |" in lines
    assert "| erp_host | changed | `erp-test.example.com` | `erp.example.com` |" in lines
    assert "### Flow orders-to-erp" in lines
    assert "| runtime.batch_size | `100` | `500` |" in lines
    assert "| sinks.warehouse.sql.url | `***` | `***` |" in lines


def test_an_unknown_environment_is_a_usage_error(scaffold: Path) -> None:
    result = runner.invoke(app, ["env", "diff", "test", "staging"])
    assert result.exit_code == 2
    assert "environment 'staging' not found (available: dev, prod, test)" in result.output


def test_lint_with_env_requires_every_variable_of_that_environment(
    scaffold: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (scaffold / "environments" / "prod.yaml").write_text("vars: {region: eu-west}\n")
    flow = scaffold / "flows" / "orders-to-erp.yaml"
    flow.write_text(
        flow.read_text().replace(
            "description: Web-shop", "description: ${var:legacy_flag} Web-shop"
        )
    )
    for name, value in {
        "ERP_URL": "http://erp.test",
        "ERP_TOKEN_URL": "http://erp.test/t",
        "ERP_CLIENT_ID": "id",
        "ERP_CLIENT_SECRET": "s3cr3t-value",
        "WEBHOOK_SECRET": "w3bh00k-value",
    }.items():
        monkeypatch.setenv(name, value)
    result = runner.invoke(app, ["lint", "--env", "prod"])
    assert result.exit_code == 2
    assert "undefined var 'legacy_flag'; looked in: environments/prod.yaml vars" in result.output
    result = runner.invoke(app, ["lint", "--env", "test"])
    assert "undefined var" not in result.output
