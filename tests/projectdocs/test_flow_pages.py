"""Flow pages of flows beyond the example: routes, JSONata, XSD, nested schemas, variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from dovetail.config.loader import load_project
from dovetail.projectdocs import document_project, render_pages
from dovetail.projectdocs.collect import strip_credentials
from dovetail.projectdocs.mermaid import flowchart
from dovetail.projectdocs.references import deep_merge, looks_secret
from dovetail.projectdocs.schema_rules import field_rules

XSD = """<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="order" type="xs:string"/>
</xs:schema>
"""

FLOW = """flow: routed-orders
version: 2.1.0
description: Orders routed by country | with "quotes" and # hashes
owner: team-b
source:
  schedule: {cron: "*/5 * * * *", timezone: Europe/Berlin}
steps:
  - validate: {schema: schemas/order.xsd}
  - map: {jsonata: "{'id': order_id, 'region': '${var:region}'}"}
  - route:
      routes:
        - {when: "country = 'DE'", to: [germany]}
        - {when: "total > 100", to: [big, germany]}
      otherwise: dead_letter
sinks:
  germany:
    http:
      url: https://shop:s3cr3tpw@erp.example.com/orders?token=abc123
      already_delivered: [409]
      transient: [404]
  big: {file: {path: outbox/big.jsonl}}
delivery:
  retry: {attempts: 3, initial: 1s, max: 2m, park_after: null}
  circuit_breaker: {failures: 4, reset: 45s}
  ordering: {key: customer_id}
  dead_letter: false
"""


@pytest.fixture
def routed(project: Path) -> Path:
    (project / "schemas").mkdir()
    (project / "schemas" / "order.xsd").write_text(XSD)
    (project / "flows" / "routed-orders.yaml").write_text(FLOW)
    (project / "environments").mkdir()
    (project / "environments" / "test.yaml").write_text(
        "vars: {region: eu-test}\nflows: {routed-orders: {owner: team-test}}\n"
    )
    (project / "environments" / "prod.yaml").write_text(
        "vars: {region: eu-prod, api_key: 4f9aK2mQ8zX1pL7vB3nR6tY0}\n"
    )
    return project


def test_route_branches_are_labelled_and_failures_stop_the_flow(routed: Path) -> None:
    doc = document_project(load_project(routed))
    (flow,) = doc.flows
    diagram = flowchart(flow)
    assert "  step2 -->|\"country = 'DE'\"| sink0" in diagram
    assert '  step2 -->|"total #gt; 100"| sink1' in diagram
    assert '  step2 -->|"total #gt; 100"| sink0' in diagram
    assert 'dlq[("flow stops")]' in diagram
    assert "step2{" in diagram  # a route is drawn as a decision
    assert "s3cr3tpw" not in diagram and "abc123" not in diagram


def test_flow_page_documents_jsonata_xsd_and_delivery(routed: Path) -> None:
    pages = render_pages(document_project(load_project(routed)))
    page = pages["flows/routed-orders.md"]
    assert "```jsonata\n{'id': order_id, 'region': '${var:region}'}\n```" in page
    assert "validated against the XML Schema `schemas/order.xsd`" in page
    assert "opens after 4 failures in a row, probes after 45s" in page
    assert "from 1s to at most 2m" in page
    assert "| ordering | `customer_id` |" in page
    assert "off: a permanent failure stops the flow" in page
    assert "Retries always wait in place" in page
    assert "no route matches: dead letter" in page
    assert "cron \\*/5 \\* \\* \\* \\* (Europe/Berlin)" in pages["index.md"]
    assert "**This flow declares no idempotency key**" in page
    section = page.split("##### HTTP 404", 1)[1].split("#####", 1)[0]
    assert "transient: retried" in section  # the sink overrides 404 as transient
    assert "s3cr3tpw" not in page and "abc123" not in page


def test_variables_are_shown_per_environment_unless_they_look_secret(routed: Path) -> None:
    page = render_pages(document_project(load_project(routed)))["flows/routed-orders.md"]
    row = next(line for line in page.splitlines() if line.startswith("| `${var:region}`"))
    assert row.endswith("| defined (`eu-prod`) | defined (`eu-test`) |")
    assert "4f9aK2mQ8zX1pL7vB3nR6tY0" not in page


def test_env_option_layers_the_environment_override(routed: Path) -> None:
    doc = document_project(load_project(routed), environment="test")
    assert doc.flows[0].owner == "team-test"
    assert doc.environments == ("test",)


def test_strip_credentials_removes_userinfo_and_query() -> None:
    assert strip_credentials("postgresql://u:p@db:5432/x?sslkey=k") == "postgresql://db:5432/x"
    assert strip_credentials("${env:ERP_URL}/orders") == "${env:ERP_URL}/orders"
    assert strip_credentials("amqp://${secret:U}:${secret:P}@mq/") == "amqp://mq/"


def test_looks_secret_by_name_or_key_like_value() -> None:
    assert looks_secret("db_password", "x")
    assert looks_secret("API_TOKEN", "x")
    assert looks_secret("anything", "4f9aK2mQ8zX1pL7vB3nR6tY0")
    assert not looks_secret("region", "eu-west")
    assert not looks_secret("base_url", "https://erp.example.com/api/v2")


def test_deep_merge_layers_nested_overrides() -> None:
    base = {"a": {"b": 1, "c": 2}, "d": [1]}
    assert deep_merge(base, {"a": {"c": 3}, "d": [2]}) == {"a": {"b": 1, "c": 3}, "d": [2]}


def test_schema_rules_follow_refs_nesting_and_hide_masked_values() -> None:
    schema = {
        "$defs": {
            "customer": {
                "type": "object",
                "required": ["email"],
                "properties": {
                    "email": {"type": "string", "enum": ["grace@example.com"]},
                    "tier": {"type": "string", "enum": ["gold", "silver"], "default": "silver"},
                },
            }
        },
        "type": "object",
        "properties": {
            "customer": {"$ref": "#/$defs/customer"},
            "lines": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["sku"],
                    "properties": {"sku": {"type": "string", "pattern": "^[A-Z]+$"}},
                },
            },
        },
    }
    rules = {r.path: r for r in field_rules(schema, ["customer.email"])}
    assert list(rules) == ["customer", "customer.email", "customer.tier", "lines", "lines[].sku"]
    assert rules["customer.email"].required
    assert "grace@example.com" not in rules["customer.email"].constraints
    assert "one of 1 values (masked)" in rules["customer.email"].constraints
    assert rules["customer.tier"].constraints == 'one of "gold", "silver"; default "silver"'
    assert rules["lines[].sku"].pattern == "^[A-Z]+$" and rules["lines[].sku"].required
