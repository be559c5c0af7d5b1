"""Case files with a partner: scripted answers and seeded faults, retries and duplicates."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import pytest

from dovetail.config.loader import load_flow, load_project
from dovetail.errors import ConfigError
from dovetail.testing.cases import load_case
from dovetail.testing.harness import CaseResult, run_case
from dovetail.testing.partner_run import detect_env, detect_paths

ORDER = "{order_id: A-1, total: 10, email: ada@example.com, customer: {name: Ada}}"


def run(root: Path, name: str) -> CaseResult:
    project = load_project(root)
    flow = load_flow(root / "flows" / "orders.yaml", project, strict=False)
    case = load_case(root / "tests" / "orders" / f"{name}.yaml", "orders", name)
    return anyio.run(lambda: run_case(flow, case))


def test_the_partner_settings_are_found_in_the_http_sinks(kit_project: Path) -> None:
    flow = load_flow(kit_project / "flows" / "orders.yaml", strict=False)
    assert detect_env(flow) == {
        "KIT_ERP_URL": "url",
        "KIT_ERP_TOKEN_URL": "token_url",
        "KIT_ERP_CLIENT_ID": "client_id",
        "KIT_ERP_CLIENT_SECRET": "client_secret",
    }
    assert detect_paths(flow) == ["/orders"]


def test_retries_expectation_passes_with_a_scripted_partner(
    kit_project: Path, write_case: Any
) -> None:
    write_case(
        kit_project,
        "retried",
        f"""
input: {{message: {ORDER}}}
partner:
  script: {{"/orders": [503, 429, 201]}}
expect:
  retries: 2
  partner_requests: 3
  duplicates: 0
  delivered: [{ORDER}]
  delivered_count: {{audit: 1}}
""",
    )
    result = run(kit_project, "retried")
    assert result.passed, result.failures
    assert result.run is not None and result.run.partner is not None
    assert result.run.partner.sinks == ["erp"]
    assert result.run.partner.statuses == [503, 429, 201]
    assert result.run.partner.tokens_issued == 1
    assert "KIT_ERP_URL" not in os.environ  # set only while the flow was loaded


def test_a_wrong_retry_count_fails_the_case(kit_project: Path, write_case: Any) -> None:
    write_case(
        kit_project,
        "wrong",
        f"""
input: {{message: {ORDER}}}
partner: {{script: {{"/orders": [503, 429, 201]}}}}
expect: {{retries: 1, partner_requests: 2, duplicates: 0}}
""",
    )
    result = run(kit_project, "wrong")
    assert not result.passed
    assert result.failures == [
        "expected 1 retries, got 2",
        "expected 2 partner requests, got 3 (answered: 503, 429, 201)",
    ]


def test_seeded_faults_give_the_same_answers_on_every_run(
    kit_project: Path, write_case: Any
) -> None:
    orders = ", ".join(f"{{order_id: B-{i}, total: {i + 1}}}" for i in range(8))
    write_case(
        kit_project,
        "faults",
        f"""
input: {{messages: [{orders}]}}
partner: {{faults: {{ratio: 0.4, kinds: [500, 503], seed: 11}}}}
expect: {{duplicates: 0, delivered_count: {{erp: 8, audit: 8}}, dead_letters: []}}
""",
    )
    first, second = run(kit_project, "faults"), run(kit_project, "faults")
    assert first.passed and second.passed, (first.failures, second.failures)
    assert first.run is not None and second.run is not None
    assert first.run.partner is not None and second.run.partner is not None
    statuses = first.run.partner.statuses
    assert statuses == second.run.partner.statuses
    faults = sum(1 for status in statuses if status in (500, 503))
    assert faults > 0 and first.run.summary.retries == faults
    assert sorted(body["order_id"] for body in first.run.partner.accepted) == sorted(
        f"B-{i}" for i in range(8)
    )


def test_a_permanent_answer_is_the_expected_dead_letter_of_that_input(
    kit_project: Path, write_case: Any
) -> None:
    case = """
input: {{messages: [{{order_id: C-0, total: 1}}, {{order_id: C-1, total: 2}}]}}
partner: {{script: {{"/orders": [201, 422]}}}}
expect:
  delivered: [{{order_id: C-0, total: 1}}]
  dead_letters: [{{step: "sink:erp", reason: "422", input: {index}}}]
"""
    write_case(kit_project, "right", case.format(index=1))
    assert run(kit_project, "right").passed
    write_case(kit_project, "wrong-input", case.format(index=0))
    failures = run(kit_project, "wrong-input").failures
    assert failures[0] == "expected a dead letter (step=sink:erp, reason~'422', input=0)"
    assert failures[1].startswith("unexpected dead letter at sink:erp (input 1): ")


def test_a_partner_that_no_sink_points_at_fails_the_case(
    kit_project: Path, write_case: Any
) -> None:
    write_case(
        kit_project,
        "unbound",
        f"""
input: {{message: {ORDER}}}
partner: {{env: {{}}}}
expect: {{delivered_count: {{audit: 1}}}}
""",
    )
    result = run(kit_project, "unbound")
    assert result.failures == ["no http sink of the flow points at the partner (see partner.env)"]


def test_partner_expectations_without_a_partner_fail(kit_project: Path, write_case: Any) -> None:
    write_case(kit_project, "alone", f"input: {{message: {ORDER}}}\nexpect: {{duplicates: 0}}\n")
    assert run(kit_project, "alone").failures == [
        "'partner_requests' and 'duplicates' need a partner: section"
    ]


def test_an_unknown_scripted_answer_is_a_case_error(kit_project: Path, write_case: Any) -> None:
    path = write_case(
        kit_project,
        "bad",
        f'input: {{message: {ORDER}}}\npartner: {{script: {{"/orders": [503, "explode"]}}}}\n',
    )
    with pytest.raises(ConfigError, match="unknown fault 'explode'"):
        load_case(path, "orders", "tests/orders/bad.yaml")
