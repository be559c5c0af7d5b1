"""route: content-based routing to named sinks, otherwise policies, targets() for lint."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dovetail.steps.route import RouteConfig
from dovetail.testing.components import build_component

ROUTES = """
route:
  routes:
    - {when: "country = 'DE'", to: [erp_de]}
    - {when: "country in ['FR', 'BE']", to: [erp_fr, archive]}
    - {when: "total > 100", to: approvals}
  otherwise: [erp_intl]
"""


def test_first_matching_route_decides(step_of, run):
    step = step_of(ROUTES)
    result = run(
        step,
        [
            {"country": "DE", "total": 500},
            {"country": "BE"},
            {"country": "US", "total": 500},
            {"country": "US"},
        ],
    )
    assert [e.routes for e in result.outcome.passed] == [
        ("erp_de",),
        ("erp_fr", "archive"),
        ("approvals",),
        ("erp_intl",),
    ]
    assert result.payloads[0] == {"country": "DE", "total": 500}


def test_mode_all_sends_to_every_matching_route_once(step_of, run):
    step = step_of(ROUTES.replace("route:\n", "route:\n  mode: all\n"))
    result = run(step, [{"country": "FR", "total": 500}, {"country": "DE", "total": 1}])
    assert [e.routes for e in result.outcome.passed] == [
        ("erp_fr", "archive", "approvals"),
        ("erp_de",),
    ]


def test_no_match_is_dead_lettered_by_default(step_of, run):
    step = step_of("route: {routes: [{when: 'a = 1', to: [one]}]}")
    result = run(step, [{"a": 2}])
    (failed,) = result.outcome.failed
    assert failed.failure.reason == "route: no route matched"
    assert failed.failure.permanent
    assert failed.failure.step == "route"
    assert failed.routes is None


def test_no_match_can_be_dropped(step_of, run):
    step = step_of("route: {routes: [{when: 'a = 1', to: [one]}], otherwise: drop}")
    result = run(step, [{"a": 2}])
    assert result.outcome.dropped == result.inputs
    assert result.acked == [0]


def test_condition_that_cannot_be_evaluated_fails_only_that_message(step_of, run):
    step = step_of("route: {routes: [{when: 'a + 1 > 2', to: [one]}]}")
    result = run(step, [{"a": "x"}, {"a": 5}])
    assert [e.routes for e in result.outcome.passed] == [("one",)]
    (failed,) = result.outcome.failed
    assert failed.failure.error_class == "MappingFailed"
    assert failed.failure.reason == "route: not a number"


def test_targets_lists_every_sink_named():
    config = RouteConfig.model_validate(
        {
            "routes": [{"when": "true", "to": ["a", "b"]}, {"when": "x", "to": "c"}],
            "otherwise": "d",
        }
    )
    assert config.targets() == {"a", "b", "c", "d"}
    dropping = RouteConfig.model_validate(
        {"routes": [{"when": "true", "to": ["a"]}], "otherwise": "drop"}
    )
    assert dropping.targets() == {"a"}


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("route: {routes: []}", "at least 1 item"),
        ("route: {routes: [{when: 'a =', to: [x]}]}", "JSONata syntax error"),
        ("route: {routes: [{when: 'true', to: []}]}", "at least 1 item"),
        ("route: {routes: [{when: 'true', to: [x]}], mode: any}", "'first' or 'all'"),
        ("route: {routes: [{when: 'true', to: [x], if: y}]}", "Extra inputs are not permitted"),
    ],
)
def test_config_errors(tmp_path, snippet, message):
    with pytest.raises(ValidationError, match=message):
        build_component("step", snippet, tmp_path)
