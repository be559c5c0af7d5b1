"""``dovetail docs`` on the example project: catalog, flow pages, secrets, masking, HTML."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import lxml.html
import orjson
import pytest
from markdown_it import MarkdownIt
from ruamel.yaml import YAML
from typer.testing import CliRunner

from dovetail.cli.app import app
from dovetail.mapping.sheet_loader import load_sheet

runner = CliRunner()
HTTP_SECTIONS = ("401", "403", "404", "409", "422", "429", "5xx")
NODE = re.compile(r'^  (\w+)(?:\["|\{"|\[\(")([^"]*)(?:"\]|"\}|"\)\])$')
EDGE = re.compile(r'^  (\w+) (-->|-\.->)(?:\|"([^"]*)"\|)? (\w+)$')


def generate(*args: str) -> Any:
    return runner.invoke(app, ["docs", *args])


def read_all(folder: Path) -> str:
    return "\n".join(
        p.read_text(encoding="utf-8") for p in sorted(folder.rglob("*")) if p.is_file()
    )


def html_of(markdown: str) -> Any:
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    return lxml.html.fromstring(f"<div>{md.render(markdown)}</div>")


def table_after(root: Any, heading_text: str) -> list[list[str]]:
    """Rows (header first) of the first table after the heading containing ``heading_text``."""
    heading = next(h for h in root.iter("h1", "h2", "h3") if heading_text in h.text_content())
    table = next(el for el in heading.itersiblings() if el.tag == "table")
    return [[cell.text_content() for cell in row] for row in table.iter("tr")]


def mermaid_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```mermaid\n(.*?)\n```$", markdown, re.S | re.M)


def check_flowchart(source: str) -> dict[str, str]:
    """A structural check of the Mermaid subset we emit; returns node id -> label."""
    lines = source.splitlines()
    assert lines[0] == "flowchart LR"
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str, str | None, str]] = []
    for line in lines[1:]:
        if node := NODE.match(line):
            nodes[node.group(1)] = node.group(2)
        elif edge := EDGE.match(line):
            edges.append((edge.group(1), edge.group(2), edge.group(3), edge.group(4)))
        else:
            assert line.startswith(("  classDef ", "  class ")), line
    for start, _, _, end in edges:
        assert start in nodes and end in nodes, (start, end)
    assert any(arrow == "-.->" and end == "dlq" for _, arrow, _, end in edges)
    return nodes


def test_catalog_lists_both_flows_with_owner_and_version(example: Path) -> None:
    result = generate()
    assert result.exit_code == 0, result.output
    index = (example / "docs-site" / "index.md").read_text(encoding="utf-8")
    rows = table_after(html_of(index), "Interface catalog")
    header, body = rows[0], rows[1:]
    assert header[:3] == ["flow", "version", "owner"]
    assert {tuple(r[:3]) for r in body} == {
        ("orders-to-erp", "1.0.0", "integration-team"),
        ("webhook-orders", "1.0.0", "integration-team"),
    }
    orders = next(r for r in body if r[0] == "orders-to-erp")
    assert "inbox/orders/*.csv" in orders[4]
    assert "erp → http: POST ${env:ERP_URL}/sales-orders" in orders[5]
    assert "warehouse → sql" in orders[5]
    assert "polls every" in orders[6]
    assert "[orders-to-erp](flows/orders-to-erp.md)" in index


def test_flow_page_has_a_flowchart_naming_every_step_and_sink(example: Path) -> None:
    assert generate().exit_code == 0
    page = (example / "docs-site" / "flows" / "orders-to-erp.md").read_text(encoding="utf-8")
    (diagram,) = mermaid_blocks(page)
    nodes = check_flowchart(diagram)
    labels = list(nodes.values())
    for index, step in enumerate(["validate", "map", "lookup", "filter"]):
        assert labels[index + 1].startswith(f"{index + 1}. {step}: ")
    assert any(label.startswith("erp: http POST") for label in labels)
    assert any(label.startswith("warehouse: sql") for label in labels)
    assert nodes["dlq"] == "dead-letter queue"
    assert "amount #gt; 0" in diagram


def test_mapping_table_rows_equal_the_sheet_rows(example: Path) -> None:
    assert generate().exit_code == 0
    page = (example / "docs-site" / "flows" / "orders-to-erp.md").read_text(encoding="utf-8")
    rows = table_after(html_of(page), "mappings/order-to-salesorder.csv")
    assert rows[0] == ["target field", "source expression", "transform", "required", "notes"]
    sheet = load_sheet(example / "mappings" / "order-to-salesorder.csv")
    expected = [
        [r.target, r.source, r.transform, "yes" if r.required else "no", r.note] for r in sheet.rows
    ]
    assert [[cell.strip() for cell in row] for row in rows[1:]] == expected


def test_validation_rules_summarise_the_json_schema(example: Path) -> None:
    assert generate().exit_code == 0
    page = (example / "docs-site" / "flows" / "orders-to-erp.md").read_text(encoding="utf-8")
    rows = {r[0]: r for r in table_after(html_of(page), "schemas/order.schema.json")[1:]}
    assert rows["order_id"][1:3] == ["string", "yes"]
    assert "pattern ^WS-[0-9]{4,}$" in rows["order_id"][3]
    assert rows["currency"][2] == "no"
    assert rows["total"][1] == "string or number"
    assert "masked" in rows["email"][3]


def test_runbook_has_a_section_per_http_status_and_the_replay_commands(example: Path) -> None:
    assert generate().exit_code == 0
    page = (example / "docs-site" / "flows" / "orders-to-erp.md").read_text(encoding="utf-8")
    runbook = page.split("## Runbook", 1)[1]
    headings = re.findall(r"^##### HTTP (\S+)", runbook, re.M)
    assert tuple(headings) == HTTP_SECTIONS
    conflict = runbook.split("##### HTTP 409", 1)[1].split("#####", 1)[0]
    assert "counted as delivered" in conflict  # the sink declares already_delivered: [409]
    assert "dovetail trace CORRELATION_ID" in runbook
    assert "dovetail dlq list --flow orders-to-erp" in runbook
    assert 'dovetail replay --flow orders-to-erp --reason "HTTP 422"' in runbook
    assert "dovetail dlq parked --flow orders-to-erp" in runbook
    assert "idempotency key `order_id`" in runbook


def test_required_secrets_are_listed_per_environment(example: Path) -> None:
    (example / "environments" / "prod.yaml").write_text(
        "vars: {region: eu-central, api_token: abc}\n"
        "flows:\n  webhook-orders:\n    source: {http: {port: 9000}}\n",
        encoding="utf-8",
    )
    assert generate().exit_code == 0
    page = (example / "docs-site" / "flows" / "webhook-orders.md").read_text(encoding="utf-8")
    rows = table_after(html_of(page), "Variables and secrets")
    assert rows[0] == ["reference", "kind", "used at", "fallback", "dev", "prod"]
    by_name = {r[0]: r for r in rows[1:]}
    assert set(by_name) == {
        "${secret:ERP_CLIENT_ID}",
        "${secret:ERP_CLIENT_SECRET}",
        "${secret:WEBHOOK_SECRET}",
        "${env:ERP_TOKEN_URL}",
        "${env:ERP_URL}",
        "${env:WEBHOOK_PORT}",
    }
    assert by_name["${secret:WEBHOOK_SECRET}"][4:] == ["at run time", "at run time"]
    assert by_name["${env:WEBHOOK_PORT}"][3] == "8088"
    assert by_name["${env:WEBHOOK_PORT}"][4:] == ["default", "not used"]  # prod sets the port


def test_only_the_selected_environment_is_reported_with_env(example: Path) -> None:
    result = generate("--env", "dev", "--json")
    assert result.exit_code == 0, result.output
    page = (example / "docs-site" / "flows" / "orders-to-erp.md").read_text(encoding="utf-8")
    assert table_after(html_of(page), "Variables and secrets")[0][-1] == "dev"
    assert "Environment: `dev`" in (example / "docs-site" / "index.md").read_text()
    assert orjson.loads(result.stdout)["flows"] == ["orders-to-erp", "webhook-orders"]


def test_an_unknown_environment_is_a_usage_error(example: Path) -> None:
    result = generate("--env", "nope")
    assert result.exit_code == 2
    assert "environment 'nope' not found" in result.output
    assert not (example / "docs-site").exists()


def test_an_invalid_flow_is_listed_and_exits_2(example: Path) -> None:
    (example / "flows" / "broken.yaml").write_text("flow: broken\nsource: {nope: {}}\n")
    result = generate()
    assert result.exit_code == 2
    assert "flows/broken.yaml:2:" in result.output
    index = (example / "docs-site" / "index.md").read_text(encoding="utf-8")
    assert "invalid" in index and "flows/broken.yaml" in index
    assert (example / "docs-site" / "flows" / "orders-to-erp.md").is_file()


def masked_sample_values(example: Path) -> set[str]:
    """Every value of a masked field in the example's test inputs (and the sample CSV)."""
    values: set[str] = set()
    masked = {"email", "customer_name"}
    for case in (example / "tests").rglob("*.yaml"):
        message = (YAML(typ="safe").load(case.read_text()) or {}).get("input", {}).get("message")
        if isinstance(message, dict):
            values.update(str(message[k]).strip() for k in masked if message.get(k))
    assert len(values) >= 8
    return values


@pytest.mark.parametrize("html", [False, True])
def test_no_secret_or_masked_sample_value_appears(
    example: Path, monkeypatch: pytest.MonkeyPatch, html: bool
) -> None:
    secrets = {
        "ERP_CLIENT_ID": "client-id-7f3a9c",
        "ERP_CLIENT_SECRET": "client-secret-c81d2e",
        "ERP_URL": "https://erp-user:erp-password-93ab@erp.example.com",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    (example / "secrets").mkdir()
    (example / "secrets" / "WEBHOOK_SECRET").write_text("webhook-secret-5e6f7a\n")
    (example / "environments" / "dev.yaml").write_text(
        "vars: {region: eu-west, partner_password: pw-0a1b2c3d}\n"
    )
    args = ["--html"] if html else []
    assert generate(*args).exit_code == 0
    everything = read_all(example / "docs-site")
    for value in [*secrets.values(), "erp-password-93ab", "webhook-secret-5e6f7a"]:
        assert value not in everything
    assert "pw-0a1b2c3d" not in everything
    assert "[REDACTED]" not in everything  # nothing relied on redaction: values were never read
    for value in masked_sample_values(example):
        assert value not in everything, value
    assert '"customer_name": "***"' in everything or "&quot;customer_name&quot;" in everything


def test_html_site_is_well_formed_and_escapes_flow_text(example: Path) -> None:
    flow = example / "flows" / "orders-to-erp.yaml"
    flow.write_text(
        flow.read_text().replace(
            "description: Web-shop order exports (CSV)",
            "description: <script>alert('x')</script> & [link](javascript:alert(1)) exports",
        )
    )
    assert generate("--html").exit_code == 0
    site = example / "docs-site"
    assert sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html")) == [
        "flows/orders-to-erp.html",
        "flows/webhook-orders.html",
        "index.html",
    ]
    for path in site.rglob("*.html"):
        raw = path.read_text(encoding="utf-8")
        root = lxml.html.document_fromstring(raw)
        assert root.find("head/title") is not None
        assert root.find("body/nav") is not None and root.find("body/main") is not None
        scripts = root.findall(".//script")
        assert all("alert" not in (s.text or "") for s in scripts)
        assert "javascript:" not in " ".join(a.get("href", "") for a in root.iter("a"))
        assert "<script>alert" not in raw
    page: Any = lxml.html.document_fromstring((site / "flows" / "orders-to-erp.html").read_text())
    assert "<script>alert('x')</script>" in page.find("body/main").text_content()
    (mermaid,) = page.find_class("mermaid")
    assert mermaid.tag == "pre"
    check_flowchart(mermaid.text_content())
    links = [str(a.get("href")) for a in page.iter("a")]
    assert "../index.html" in links and "../flows/webhook-orders.html" in links
    assert not any(href.endswith(".md") for href in links)


def test_every_markdown_table_is_a_valid_table(example: Path) -> None:
    assert generate().exit_code == 0
    for path in (example / "docs-site").rglob("*.md"):
        text = path.read_text(encoding="utf-8")
        declared = len(re.findall(r"^\| --- \|", text, re.M))
        root = html_of(text)
        tables = root.findall(".//table")
        assert len(tables) == declared, path
        for table in tables:
            widths = {len(row) for row in table.iter("tr")}
            assert len(widths) == 1, (path, widths)
