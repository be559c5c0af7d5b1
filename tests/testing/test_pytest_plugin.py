"""The pytest plugin: a user's own test file using dovetail_project, run_flow and partner."""

from __future__ import annotations

import pytest

from dovetail.testing.pytest_plugin import DovetailProject

pytest_plugins = ["pytester"]

FLOW = """\
flow: orders
version: 1.2.0
source:
  file: {path: inbox/*.csv, format: csv}
steps:
  - filter: total > 0
sink:
  http:
    url: ${env:SHOP_ERP_URL}/orders
    concurrency: 1
delivery:
  retry: {attempts: 3, initial: 10ms}
"""

USER_TESTS = """
import pytest


def test_run_flow_captures_sinks_and_counts(run_flow):
    run = run_flow("orders", [{"order_id": "P-1", "total": 3}, {"order_id": "P-2", "total": 0}])
    assert run.delivered == {"sink": [{"order_id": "P-1", "total": 3}]}
    assert run.summary.filtered == 1 and run.dead_letters == []


def test_partner_receives_the_flow_after_a_retry(run_flow, partner):
    partner.script("/orders", [503, 201])
    run = run_flow("orders", [{"order_id": "P-3", "total": 1}], partner=partner)
    assert run.summary.retries == 1
    assert run.delivered == {"sink": [{"order_id": "P-3", "total": 1}]}
    assert [r.status for r in partner.requests("/orders")] == [503, 201]


def test_a_permanent_answer_is_a_dead_letter(run_flow, partner):
    partner.script("/orders", [422])
    run = run_flow("orders", [{"order_id": "P-4", "total": 1}], partner=partner)
    assert [letter.step for letter in run.dead_letters] == ["sink:sink"]


def test_case_files_run_as_dovetail_test_runs_them(dovetail_project):
    [case] = dovetail_project.cases("orders")
    result = dovetail_project.run_case(case)
    assert result.passed, result.failures


@pytest.mark.dovetail_project("other")
def test_the_marker_chooses_another_project(dovetail_project):
    assert dovetail_project.project.settings.project == "other-shop"


@pytest.mark.partner(paths=["/elsewhere"])
def test_the_partner_marker_passes_options(partner):
    assert partner.paths == ("/elsewhere",)


def test_a_wrong_expectation_fails(run_flow):
    run = run_flow("orders", [{"order_id": "P-5", "total": 0}])
    assert run.summary.filtered == 0
"""


@pytest.fixture
def user_project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".yaml", dovetail="project: shop\n")
    (pytester.path / "flows").mkdir()
    (pytester.path / "flows" / "orders.yaml").write_text(FLOW)
    cases = pytester.path / "tests" / "orders"
    cases.mkdir(parents=True)
    (cases / "kept.yaml").write_text(
        "input: {message: {order_id: K-1, total: 2}}\nexpect: {delivered_count: {sink: 1}}\n"
    )
    other = pytester.path / "other"
    other.mkdir()
    (other / "dovetail.yaml").write_text("project: other-shop\n")
    pytester.makeconftest('pytest_plugins = ["dovetail.testing.pytest_plugin"]\n')
    return pytester


def test_a_user_test_file_uses_the_fixtures(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(test_user=USER_TESTS)
    result = user_project.runpytest("--strict-markers", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines(["*test_a_wrong_expectation_fails*"])


def test_a_folder_without_a_project_fails_the_fixture(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["dovetail.testing.pytest_plugin"]\n')
    pytester.makepyfile("def test_project(dovetail_project):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no dovetail.yaml at or above*"])


def test_the_project_helper_loads_flows_by_name_and_path(user_project: pytest.Pytester) -> None:
    from dovetail.config.loader import load_project

    project = DovetailProject(load_project(user_project.path))
    assert project.flow("orders") is project.flow("orders")
    assert project.flow("flows/orders.yaml").version == "1.2.0"
    assert [flow.name for flow in project.flows()] == ["orders"]
