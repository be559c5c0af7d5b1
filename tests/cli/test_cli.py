"""The command line: init, lint, schema, test, dlq and exit codes, run in-process."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from dovetail.cli.app import app

runner = CliRunner()


@pytest.fixture
def scaffold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "proj"
    result = runner.invoke(app, ["init", str(target)])
    assert result.exit_code == 0, result.output
    monkeypatch.chdir(target)
    return target


def test_init_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("x")
    result = runner.invoke(app, ["init", str(tmp_path)])
    assert result.exit_code == 2
    assert "not empty" in result.output


def test_scaffold_lints_clean(scaffold: Path) -> None:
    result = runner.invoke(app, ["lint"])
    assert result.exit_code == 0, result.output
    assert "2 flow(s) OK" in result.output


def test_lint_reports_positions_and_exits_2(scaffold: Path) -> None:
    flow = scaffold / "flows" / "orders-to-erp.yaml"
    text = flow.read_text().replace("format: csv", "formatt: csv")
    text = text.replace("filter: amount > 0", "filter: amount >")
    flow.write_text(text)
    result = runner.invoke(app, ["lint"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert any(
        line.startswith("flows/orders-to-erp.yaml:9:")
        and "unknown key 'formatt' (did you mean 'format'?)" in line
        for line in lines
    ), lines
    assert any(
        line.startswith("flows/orders-to-erp.yaml:16:") and "JSONata" in line for line in lines
    ), lines


def test_lint_with_env_requires_every_variable_and_secret(
    scaffold: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (
        "ERP_URL",
        "ERP_TOKEN_URL",
        "ERP_CLIENT_ID",
        "ERP_CLIENT_SECRET",
        "WEBHOOK_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)
    result = runner.invoke(app, ["lint", "--env", "dev"])
    assert result.exit_code == 2
    assert "undefined env 'ERP_URL'" in result.output
    assert "undefined secret 'ERP_CLIENT_SECRET'" in result.output
    monkeypatch.setenv("ERP_URL", "http://erp.test")
    monkeypatch.setenv("ERP_TOKEN_URL", "http://erp.test/token")
    monkeypatch.setenv("ERP_CLIENT_ID", "shop-client")
    monkeypatch.setenv("ERP_CLIENT_SECRET", "s3cr3t-value")
    monkeypatch.setenv("WEBHOOK_SECRET", "w3bh00k-value")
    result = runner.invoke(app, ["lint", "--env", "dev"])
    assert result.exit_code == 0, result.output


def test_schema_prints_json_schema(scaffold: Path) -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = orjson.loads(result.output)
    assert schema["$schema"].endswith("2020-12/schema")
    assert "source.file" in schema["$defs"]


def test_flow_tests_pass_and_write_junit(scaffold: Path) -> None:
    result = runner.invoke(app, ["test", "--junit", "report.xml"])
    assert result.exit_code == 0, result.output
    assert "failed" in result.output and " 0 failed" in result.output
    xml = (scaffold / "report.xml").read_text()
    assert "<testsuite" in xml and 'failures="0"' in xml


def test_a_failing_flow_test_exits_3(scaffold: Path) -> None:
    lookups = scaffold / "lookups" / "status.csv"
    lookups.write_text(lookups.read_text().replace("paid,RELEASED", "paid,HELD"))
    result = runner.invoke(app, ["test", "--json"])
    assert result.exit_code == 3
    report = orjson.loads(result.output)
    assert any(not case["passed"] for case in report)


def test_dlq_list_on_a_fresh_project_is_empty(scaffold: Path) -> None:
    result = runner.invoke(app, ["dlq", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.output) == []


def test_dlq_show_unknown_id_is_a_usage_error(scaffold: Path) -> None:
    result = runner.invoke(app, ["dlq", "show", "999"])
    assert result.exit_code == 2


def test_run_then_replay_by_flow_name_after_a_fix(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "lookups").mkdir()
    (project / "lookups" / "codes.csv").write_text("code,name\nA,Alpha\n")
    (project / "in").mkdir()
    (project / "in" / "batch.jsonl").write_text('{"id": 1, "code": "A"}\n{"id": 2, "code": "B"}\n')
    (project / "flows" / "any-file-name.yaml").write_text(
        "flow: coded\n"
        "source: {file: {path: in/*.jsonl, format: jsonl}}\n"
        "steps:\n"
        "  - lookup: {table: lookups/codes.csv, key: code, into: name, on_missing: dead_letter}\n"
        "sink: {file: {path: out/coded.jsonl, format: jsonl}}\n"
        "delivery: {idempotency_key: id}\n"
    )
    monkeypatch.chdir(project)
    first = runner.invoke(app, ["run", "--once", "--json"])
    assert first.exit_code == 3, first.output
    (project / "lookups" / "codes.csv").write_text("code,name\nA,Alpha\nB,Beta\n")
    replayed = runner.invoke(app, ["replay", "--flow", "coded", "--json"])
    assert replayed.exit_code == 0, replayed.output
    report = orjson.loads(replayed.output)
    assert report["selected"] == 1
    assert report["runs"][0]["delivered"] == {"sink": 1}
    lines = (project / "out" / "coded.jsonl").read_text().splitlines()
    assert [orjson.loads(line)["name"] for line in lines] == ["Alpha", "Beta"]
    again = runner.invoke(app, ["replay", "--json"])
    assert orjson.loads(again.output)["selected"] == 0
