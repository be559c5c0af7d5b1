"""`dovetail contract diff`: breaking changes between two versions of a partner's API, marked
where they touch fields a flow's mappings write or read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from dovetail.cli.app import app
from dovetail.contracts.diff import diff_specs
from tests.contracts.specs import ERP_V1, ERP_V2

runner = CliRunner()


def load(text: str) -> dict[str, Any]:
    document: dict[str, Any] = YAML(typ="safe").load(text)
    return document


def test_every_kind_of_breaking_change_is_found() -> None:
    changes = {
        (c.kind, c.operation, c.field) for c in diff_specs(load(ERP_V1), load(ERP_V2)).changes
    }
    assert changes == {
        ("path removed", "listCustomers", None),
        ("parameter newly required", "getSalesOrder", "x-company"),
        ("response field removed", "getSalesOrder", "created_at"),
        ("response field removed", "createSalesOrder", "created_at"),
        ("request type changed", "createSalesOrder", "amount"),
        ("enum values removed", "createSalesOrder", "currency"),
        ("enum values removed", "createSalesOrder", "erp_status"),
        ("request field removed", "createSalesOrder", "customer.email"),
        ("request field newly required", "createSalesOrder", "customer.contact"),
        ("request field newly required", "createSalesOrder", "customer.contact.email"),
    }


def test_a_spec_compared_with_itself_has_no_breaking_changes() -> None:
    assert diff_specs(load(ERP_V1), load(ERP_V1)).changes == []


def test_additions_that_callers_can_ignore_are_not_breaking() -> None:
    newer = ERP_V1.replace(
        "        status: {type: string}\n",
        "        status: {type: string}\n        note: {type: string}\n",
    ).replace("enum: [EUR, USD, GBP, CHF]", "enum: [EUR, USD, GBP, CHF, SEK]")
    assert diff_specs(load(ERP_V1), load(newer)).changes == []


def test_a_removed_operation_on_a_kept_path_is_reported_as_such() -> None:
    newer = ERP_V1.replace(
        "    get:\n      operationId: getSalesOrder",
        "    delete:\n      operationId: deleteSalesOrder",
    )
    kinds = [c.kind for c in diff_specs(load(ERP_V1), load(newer)).changes]
    assert kinds == ["operation removed"]


@pytest.fixture
def erp_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "proj"
    assert runner.invoke(app, ["init", str(target)]).exit_code == 0
    (target / "schemas" / "erp-v1.yaml").write_text(ERP_V1)
    (target / "schemas" / "erp-v2.yaml").write_text(ERP_V2)
    monkeypatch.chdir(target)
    return target


def test_a_removed_required_field_written_by_the_mapping_fails_with_exit_3(
    erp_project: Path,
) -> None:
    result = runner.invoke(
        app,
        [
            "contract",
            "diff",
            "schemas/erp-v1.yaml",
            "schemas/erp-v2.yaml",
            "--flow",
            "orders-to-erp",
        ],
    )
    assert result.exit_code == 3, result.output
    rows = [line for line in result.output.splitlines() if "| customer.email |" in line]
    assert len(rows) == 1
    assert rows[0].startswith("| YES | request field removed | createSalesOrder | customer.email |")
    assert "mappings/order-to-salesorder.csv:4" in rows[0]
    assert "10 breaking change(s)" in result.output


def test_json_output_names_the_mapping_that_uses_each_touched_field(erp_project: Path) -> None:
    result = runner.invoke(
        app,
        [
            "contract",
            "diff",
            "schemas/erp-v1.yaml",
            "schemas/erp-v2.yaml",
            "--flow",
            "orders-to-erp",
            "--json",
        ],
    )
    assert result.exit_code == 3
    report = orjson.loads(result.output)
    touched = {c["field"]: c["used_by"] for c in report["breaking"] if c["used_by"]}
    assert touched["customer.email"] == "orders-to-erp: mappings/order-to-salesorder.csv:4"
    assert touched["amount"] == "orders-to-erp: mappings/order-to-salesorder.csv:8"
    assert "erp_status" in touched  # written by the lookup step and a warehouse column
    assert "customer.contact" not in touched  # newly required, but nothing maps it yet
    assert report["touching"] == len(touched)


def test_flows_whose_contract_is_the_old_spec_are_checked_by_default(erp_project: Path) -> None:
    flow = erp_project / "flows" / "orders-to-erp.yaml"
    flow.write_text(
        flow.read_text().replace(
            "      rate_limit: 50/s\n",
            "      rate_limit: 50/s\n      contract: schemas/erp-v1.yaml#createSalesOrder\n",
        )
    )
    result = runner.invoke(
        app, ["contract", "diff", "schemas/erp-v1.yaml", "schemas/erp-v2.yaml", "--json"]
    )
    assert result.exit_code == 3, result.output
    report = orjson.loads(result.output)
    assert report["flows"] == ["orders-to-erp"]
    used = {c["operation"] for c in report["breaking"] if c["used_by"]}
    assert used == {"createSalesOrder"}  # the flow's own operation only


def test_no_touching_change_exits_0(erp_project: Path) -> None:
    newer = ERP_V1.replace("        created_at: {type: string, format: date-time}\n", "")
    (erp_project / "schemas" / "erp-v3.yaml").write_text(newer)
    result = runner.invoke(
        app,
        [
            "contract",
            "diff",
            "schemas/erp-v1.yaml",
            "schemas/erp-v3.yaml",
            "--flow",
            "orders-to-erp",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "| | response field removed |" in result.output.replace("|  |", "| |")


def test_a_file_that_is_not_openapi_is_a_usage_error(erp_project: Path) -> None:
    result = runner.invoke(
        app, ["contract", "diff", "schemas/order.schema.json", "schemas/erp-v2.yaml"]
    )
    assert result.exit_code == 2
    assert "not an OpenAPI 3 document" in result.output
