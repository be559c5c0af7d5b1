"""Governance rules in `dovetail lint`: each fires on a violating flow, not on a clean one,
and its severity is set in dovetail.yaml."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from dovetail.cli.app import app

runner = CliRunner()
ERP_FLOW = "flows/orders-to-erp.yaml"
WEBHOOK_FLOW = "flows/webhook-orders.yaml"


@pytest.fixture
def scaffold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "proj"
    assert runner.invoke(app, ["init", str(target)]).exit_code == 0
    monkeypatch.chdir(target)
    return target


def edit(root: Path, name: str, old: str, new: str) -> None:
    path = root / name
    text = path.read_text()
    assert old in text, f"{old!r} not in {name}"
    path.write_text(text.replace(old, new, 1))


def lint_json(*args: str) -> tuple[int, list[dict[str, object]]]:
    result = runner.invoke(app, ["lint", "--json", *args])
    return result.exit_code, orjson.loads(result.output)


def test_the_scaffolded_project_passes_every_default_rule(scaffold: Path) -> None:
    code, findings = lint_json()
    assert code == 0
    assert findings == []


VIOLATIONS = [
    ("kebab-case-name", ERP_FLOW, "flow: orders-to-erp", "flow: Orders_To_ERP", "error", 1),
    ("semantic-version", ERP_FLOW, "version: 1.0.0\n", "", "warning", 1),
    ("owner", WEBHOOK_FLOW, "owner: integration-team\n", "", "warning", 1),
    (
        "error-handling-declared",
        WEBHOOK_FLOW,
        "  retry: {attempts: 5, initial: 200ms, max: 5s}\n",
        "",
        "warning",
        33,
    ),
    ("idempotency-key", ERP_FLOW, "  idempotency_key: order_id\n", "", "error", 20),
    (
        "pii-masked",
        ERP_FLOW,
        "mask: [email, customer_name, customer.email, customer.name]",
        "mask: [customer_name, customer.name]",
        "warning",
        52,
    ),
    (
        "no-inline-secrets",
        WEBHOOK_FLOW,
        "client_secret: ${secret:ERP_CLIENT_SECRET}",
        "client_secret: s3cr3t-in-the-file",
        "error",
        30,
    ),
]


@pytest.mark.parametrize(("rule", "flow", "old", "new", "severity", "line"), VIOLATIONS)
def test_each_rule_fires_on_a_violation_with_its_position(
    scaffold: Path, rule: str, flow: str, old: str, new: str, severity: str, line: int
) -> None:
    edit(scaffold, flow, old, new)
    code, findings = lint_json()
    mine = [f for f in findings if f["rule"] == rule]
    assert mine, findings
    assert {f["path"] for f in mine} == {flow}
    assert all(f["severity"] == severity for f in mine)
    assert mine[0]["line"] == line
    assert code == (2 if severity == "error" else 0)
    assert "s3cr3t-in-the-file" not in str(findings)


def test_text_output_uses_the_config_error_format(scaffold: Path) -> None:
    edit(scaffold, ERP_FLOW, "  idempotency_key: order_id\n", "")
    edit(scaffold, ERP_FLOW, "owner: integration-team\n", "")
    result = runner.invoke(app, ["lint"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert "flows/orders-to-erp.yaml:1:1: warning: name the flow's owner" in lines[0]
    assert lines[0].endswith("[owner]")
    assert lines[1].startswith("flows/orders-to-erp.yaml:19:5: sink 'erp' (http) is not idempotent")
    assert lines[1].endswith("[idempotency-key]")
    assert "flow(s) OK" not in result.output


def test_a_rule_switched_off_is_silent(scaffold: Path) -> None:
    edit(scaffold, ERP_FLOW, "  idempotency_key: order_id\n", "")
    with (scaffold / "dovetail.yaml").open("a") as handle:
        handle.write("lint:\n  rules: {idempotency-key: 'off'}\n")
    code, findings = lint_json()
    assert (code, findings) == (0, [])


def test_an_error_lowered_to_a_warning_prints_and_passes(scaffold: Path) -> None:
    edit(scaffold, ERP_FLOW, "  idempotency_key: order_id\n", "")
    with (scaffold / "dovetail.yaml").open("a") as handle:
        handle.write("lint:\n  rules: {idempotency-key: warning}\n")
    result = runner.invoke(app, ["lint"])
    assert result.exit_code == 0, result.output
    assert "warning: sink 'erp' (http) is not idempotent" in result.output
    assert "2 flow(s) OK" in result.output


def test_a_warning_raised_to_an_error_fails_lint(scaffold: Path) -> None:
    edit(scaffold, WEBHOOK_FLOW, "owner: integration-team\n", "")
    with (scaffold / "dovetail.yaml").open("a") as handle:
        handle.write("lint:\n  rules: {owner: error}\n")
    code, findings = lint_json()
    assert code == 2
    assert [(f["rule"], f["severity"]) for f in findings] == [("owner", "error")]


def test_an_unknown_rule_id_is_a_located_config_error(scaffold: Path) -> None:
    with (scaffold / "dovetail.yaml").open("a") as handle:
        handle.write("lint:\n  rules:\n    idempotency-keys: warning\n")
    result = runner.invoke(app, ["lint"])
    assert result.exit_code == 2
    assert result.output.startswith("dovetail.yaml:8:5: unknown lint rule 'idempotency-keys'")


PLUGIN = '''
from dovetail.governance import Finding, lint_rule


@lint_rule("description-required", default="warning")
def description_required(flow, project):
    """Every flow says in one line what it does."""
    if len(flow.spec.description) < 80:
        return [Finding(f"{flow.name}: describe the flow in more detail", loc=("description",))]
    return []


def not_a_rule():
    return 42
'''


def test_a_custom_plugin_rule_is_loaded_and_reported(scaffold: Path) -> None:
    (scaffold / "house_rules.py").write_text(PLUGIN)
    with (scaffold / "dovetail.yaml").open("a") as handle:
        handle.write("lint:\n  plugins: [house_rules]\n")
    code, findings = lint_json()
    assert code == 0
    assert [(f["rule"], f["path"], f["line"]) for f in findings] == [
        ("description-required", ERP_FLOW, 3),
        ("description-required", WEBHOOK_FLOW, 3),
    ]
    with (scaffold / "dovetail.yaml").open("a") as handle:
        handle.write("  rules: {description-required: error}\n")
    code, findings = lint_json()
    assert code == 2
    assert {f["severity"] for f in findings} == {"error"}


def test_a_plugin_module_may_list_plain_functions_in_rules(scaffold: Path) -> None:
    (scaffold / "checks.py").write_text(
        "from dovetail.governance import Finding\n\n"
        "def no_webhooks(flow, project):\n"
        "    if flow.source.spec.name == 'http':\n"
        "        return [Finding('webhooks need approval', loc=('source',))]\n"
        "    return []\n\n"
        "RULES = [no_webhooks]\n"
    )
    with (scaffold / "dovetail.yaml").open("a") as handle:
        handle.write("lint:\n  plugins: [checks]\n")
    result = runner.invoke(app, ["lint"])
    assert result.exit_code == 2
    assert result.output.startswith(
        "flows/webhook-orders.yaml:6:1: webhooks need approval [no-webhooks]"
    )


def test_a_plugin_that_cannot_be_imported_is_a_config_error(scaffold: Path) -> None:
    (scaffold / "broken.py").write_text("import does_not_exist_anywhere\n")
    with (scaffold / "dovetail.yaml").open("a") as handle:
        handle.write("lint:\n  plugins: [broken]\n")
    result = runner.invoke(app, ["lint"])
    assert result.exit_code == 2
    assert "lint plugin 'broken' cannot be loaded: ModuleNotFoundError" in result.output


def test_a_rule_that_crashes_is_reported_not_raised(scaffold: Path) -> None:
    (scaffold / "crashy.py").write_text(
        "from dovetail.governance import lint_rule\n\n"
        "@lint_rule('crashy', default='warning')\n"
        "def crashy(flow, project):\n"
        "    raise RuntimeError('boom')\n"
    )
    with (scaffold / "dovetail.yaml").open("a") as handle:
        handle.write("lint:\n  plugins: [crashy]\n")
    code, findings = lint_json()
    assert code == 2
    assert findings[0]["rule"] == "crashy"
    assert "RuntimeError: boom" in str(findings[0]["message"])
