"""Sink contracts: checked at lint, in `dovetail test`, and (enforce: true) before sending."""

from __future__ import annotations

from pathlib import Path

import anyio
import orjson
import pytest
from typer.testing import CliRunner

from dovetail.cli.app import app
from dovetail.config.loader import load_flow
from dovetail.observability.logging import configure_logging
from dovetail.testing.harness import run_offline
from tests.contracts.specs import ERP_V1

runner = CliRunner()
SINK_LINE = "      rate_limit: 50/s\n"


@pytest.fixture
def erp_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "proj"
    assert runner.invoke(app, ["init", str(target)]).exit_code == 0
    (target / "schemas" / "erp-openapi.yaml").write_text(ERP_V1)
    monkeypatch.chdir(target)
    return target


def with_contract(root: Path, contract: str) -> Path:
    flow = root / "flows" / "orders-to-erp.yaml"
    flow.write_text(flow.read_text().replace(SINK_LINE, f"{SINK_LINE}      contract: {contract}\n"))
    return flow


def test_flow_tests_pass_when_the_output_meets_the_contract(erp_project: Path) -> None:
    with_contract(erp_project, "schemas/erp-openapi.yaml#createSalesOrder")
    assert runner.invoke(app, ["lint"]).exit_code == 0
    result = runner.invoke(app, ["test", "--json"])
    assert result.exit_code == 0, result.output


def test_flow_tests_fail_on_output_that_breaks_the_contract(erp_project: Path) -> None:
    spec = erp_project / "schemas" / "erp-openapi.yaml"
    spec.write_text(
        ERP_V1.replace("required: [external_ref,", "required: [payment_terms, external_ref,")
    )
    with_contract(erp_project, "{openapi: schemas/erp-openapi.yaml, operation: createSalesOrder}")
    result = runner.invoke(app, ["test", "--json"])
    assert result.exit_code == 3, result.output
    failed = {r["case"]: r["failures"] for r in orjson.loads(result.output) if not r["passed"]}
    assert set(failed) == {
        "a paid order becomes an ERP sales order and a warehouse row",
        "the sample export - valid rows delivered, bad rows dead-lettered with reasons",
    }
    (message, *_) = failed["a paid order becomes an ERP sales order and a warehouse row"]
    assert message.startswith("erp[0]: contract schemas/erp-openapi.yaml#createSalesOrder violated")
    assert 'at /: "payment_terms" is a required property' in message


def test_a_json_schema_contract_is_checked_too(erp_project: Path) -> None:
    (erp_project / "schemas" / "sales-order.schema.json").write_text(
        orjson.dumps(
            {
                "type": "object",
                "required": ["external_ref"],
                "properties": {"amount": {"type": "integer"}},
            }
        ).decode()
    )
    with_contract(erp_project, "{json_schema: schemas/sales-order.schema.json}")
    result = runner.invoke(app, ["test", "--json"])
    assert result.exit_code == 3
    assert "at /amount: 129.9 is not of type" not in result.output  # values are masked
    assert "at /amount:" in result.output


@pytest.mark.parametrize(
    ("contract", "expected"),
    [
        ("schemas/erp-openapi.yaml#createOrder", "has no operation 'createOrder'"),
        ("schemas/erp-openapi.yaml#getSalesOrder", "takes no JSON request body"),
        ("schemas/missing.yaml#createSalesOrder", "file not found: schemas/missing.yaml"),
        ("{openapi: schemas/erp-openapi.yaml}", "needs `operation`"),
    ],
)
def test_a_wrong_contract_is_a_located_lint_error(
    erp_project: Path, contract: str, expected: str
) -> None:
    with_contract(erp_project, contract)
    result = runner.invoke(app, ["lint"])
    assert result.exit_code == 2
    assert result.output.startswith("flows/orders-to-erp.yaml:")
    assert expected in result.output


def test_an_enforced_contract_dead_letters_a_violating_message_before_sending(
    erp_project: Path,
) -> None:
    flow_file = with_contract(
        erp_project,
        "{openapi: schemas/erp-openapi.yaml, operation: createSalesOrder, enforce: true}",
    )
    configure_logging("error")  # expected dead letters are not news
    flow = load_flow(flow_file, strict=False)
    good = {
        "order_id": "WS-3001",
        "customer_name": "Ada",
        "email": "ada@example.com",
        "country": "gb",
        "status": "paid",
        "total": "10.00",
        "currency": "EUR",
        "created_at": "2026-11-20T10:15:00Z",
    }
    bad = {**good, "order_id": "WS-3002", "currency": "JPY"}  # the ERP does not take yen
    run = anyio.run(lambda: run_offline(flow, messages=[good, bad]))
    assert [p["external_ref"] for p in run.delivered["erp"]] == ["WS-3001"]
    assert [p["external_ref"] for p in run.delivered["warehouse"]] == ["WS-3001", "WS-3002"]
    (letter,) = run.dead_letters
    assert letter.step == "sink:erp"
    assert letter.reason.startswith(
        "contract schemas/erp-openapi.yaml#createSalesOrder violated at /currency:"
    )
    assert "JPY" not in letter.reason
    assert run.summary.dead_lettered == 1
