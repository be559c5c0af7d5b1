"""JSONata comes only from flow files and every evaluation is bounded: a pathological
expression or payload fails the message with a clear reason, never hangs the flow."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dovetail.errors import MappingFailed
from dovetail.mapping.jsonata import EvaluationLimits, JsonataSyntaxError, compile_expression
from tests.safety.flows import run_flow_file

FAST = EvaluationLimits(seconds=0.3)
UNBOUNDED = EvaluationLimits(seconds=None, depth=None, range_items=None)


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("$count([1..5000000])", "builds a range of 5000000 items, more than the limit"),
        ("$sum([1..100000000])", "range operator"),
        ("($f := function($n){$n > 0 ? 1 + $f($n-1) : 0}; $f(100000))", "nests deeper than"),
        ("($f := function($n){$f($n)}; $f(1))", "ran longer than 0.3s"),
        ("$count($map([1..999999], function($x){$x * 2}))", "ran longer than 0.3s"),
    ],
)
def test_pathological_expressions_fail_quickly_with_a_reason(source: str, reason: str) -> None:
    expression = compile_expression(source, FAST)
    started = time.monotonic()
    with pytest.raises(MappingFailed, match=reason.replace("(", r"\(").replace(".", r"\.")):
        expression.evaluate({})
    assert time.monotonic() - started < 2


def test_switched_off_the_range_limit_lets_a_huge_range_through() -> None:
    assert compile_expression("$count([1..5000000])", UNBOUNDED).evaluate({}) == 5000000


def test_switched_off_the_time_limit_lets_a_long_loop_run_past_it() -> None:
    source = "$count($map([1..40000], function($x){$x * 2}))"
    limits = EvaluationLimits(seconds=0.01)
    with pytest.raises(MappingFailed, match="ran longer"):
        compile_expression(source, limits).evaluate({})
    assert compile_expression(source, UNBOUNDED).evaluate({}) == 40000


def test_switched_off_the_depth_limit_recursion_goes_deeper() -> None:
    source = "($f := function($n){$n > 0 ? 1 + $f($n-1) : 0}; $f(150))"
    with pytest.raises(MappingFailed, match="nests deeper"):
        compile_expression(source).evaluate({})
    assert compile_expression(source, UNBOUNDED).evaluate({}) == 150


def test_dollar_eval_is_refused_at_compile_time() -> None:
    with pytest.raises(JsonataSyntaxError, match=r"\$eval is not allowed") as caught:
        compile_expression('"x" & $eval(formula)')
    assert caught.value.position == 6


def test_expressions_in_message_data_stay_data() -> None:
    expression = compile_expression('"value: " & formula')
    assert expression.evaluate({"formula": "$sum([1..10])"}) == "value: $sum([1..10])"


def test_python_recursion_exhaustion_is_a_mapping_failure_not_a_crash() -> None:
    source = "($f := function($n){$n > 0 ? 1 + $f($n-1) : 0}; $f(100000))"
    limits = EvaluationLimits(seconds=5, depth=None)
    with pytest.raises(MappingFailed, match="recursed too deeply"):
        compile_expression(source, limits).evaluate({})


FLOW = """\
flow: f
version: 1.0.0
source:
  file: {path: "inbox/*.jsonl"}
steps:
  - map: {jsonata: '{"id": id, "n": $count([1..n])}'}
sink:
  file: {path: outbox/out.jsonl}
"""


def test_in_a_flow_the_breach_is_a_dead_letter_and_the_flow_continues(project: Path) -> None:
    (project / "inbox").mkdir()
    (project / "inbox/a.jsonl").write_text('{"id": 1, "n": 5000000}\n{"id": 2, "n": 3}\n')
    result = run_flow_file(project, FLOW)
    assert result.delivered == [{"id": 2, "n": 3}]
    assert len(result.reasons) == 1
    assert "builds a range of 5000000 items, more than the limit of 1000000" in result.reasons[0]
