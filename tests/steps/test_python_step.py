"""python: a function from the user's project; only project modules may be loaded."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from dovetail.testing.components import build_component

HOOKS = """
from dovetail.errors import TransientError


def enrich(payload):
    return {**payload, "enriched": True}


def with_envelope(payload, envelope):
    return {"payload": payload, "attempt": envelope.attempt, "cid": envelope.correlation_id}


async def later(payload):
    return payload["n"] * 2


def only_even(payload):
    return payload if payload["n"] % 2 == 0 else None


def explode(payload):
    return [{"n": n} for n in range(payload["n"])]


def broken(payload):
    raise ValueError("no price for sku " + payload["sku"])


def chatty(payload):
    raise RuntimeError("x" * 1000)


def flaky(payload):
    raise TransientError("partner busy")


def no_arguments():
    return 1


CONSTANT = 42
"""


@pytest.fixture
def package(write) -> Iterator[str]:
    """A uniquely named package in the project, forgotten by ``sys.modules`` afterwards."""
    name = f"hooks_{uuid.uuid4().hex[:8]}"
    write(f"{name}/__init__.py", "")
    write(f"{name}/orders.py", HOOKS)
    write(f"{name}/bad.py", "1 / 0\n")
    yield name
    for module in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
        del sys.modules[module]


def test_function_result_is_the_new_payload(package, step_of, run):
    step = step_of(f"python: {package}.orders:enrich")
    assert run(step, [{"a": 1}]).payloads == [{"a": 1, "enriched": True}]


def test_second_parameter_receives_the_envelope(package, step_of, run):
    step = step_of(f"python: {{function: '{package}.orders:with_envelope'}}")
    result = run(step, [{"a": 1}])
    assert result.payloads == [
        {"payload": {"a": 1}, "attempt": 1, "cid": result.inputs[0].correlation_id}
    ]


def test_async_functions_are_awaited(package, step_of, run):
    assert run(step_of(f"python: {package}.orders:later"), [{"n": 4}]).payloads == [8]


def test_none_filters_the_message_out(package, step_of, run):
    result = run(step_of(f"python: {package}.orders:only_even"), [{"n": 1}, {"n": 2}])
    assert result.payloads == [{"n": 2}]
    assert result.outcome.dropped == [result.inputs[0]]
    assert sorted(result.acked) == [0, 1]


def test_a_list_makes_several_messages_acked_together(package, step_of, run):
    result = run(step_of(f"python: {package}.orders:explode"), [{"n": 3}, {"n": 0}])
    assert result.payloads == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert {e.correlation_id for e in result.outcome.passed} == {result.inputs[0].correlation_id}
    assert result.outcome.dropped == [result.inputs[1]]
    assert sorted(result.acked) == [0, 1]


def test_exception_dead_letters_with_its_class_and_keeps_the_message_as_detail(
    package, step_of, run
):
    result = run(step_of(f"python: {package}.orders:broken"), [{"sku": "K-1"}])
    (failed,) = result.outcome.failed
    assert failed.failure.reason == f"python: ValueError in {package}.orders:broken"
    assert failed.failure.detail == "ValueError: no price for sku K-1"
    assert failed.failure.error_class == "ValueError"
    assert failed.failure.permanent
    assert failed.failure.step == "python"


def test_long_exception_messages_stay_out_of_the_reason(package, step_of, run):
    result = run(step_of(f"python: {package}.orders:chatty"), [{}])
    (reason,) = result.reasons
    assert reason == f"python: RuntimeError in {package}.orders:chatty"


def test_transient_error_asks_for_a_retry(package, step_of, run):
    result = run(step_of(f"python: {package}.orders:flaky"), [{}])
    (failed,) = result.outcome.failed
    assert failed.failure.reason == "python: partner busy"
    assert failed.failure.permanent is False


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("json:loads", "module json resolves to"),
        ("os.path:join", "outside the project directory"),
        ("{package}.orders:missing", "has no function 'missing'"),
        ("{package}.orders:CONSTANT", "has no function 'CONSTANT'"),
        ("{package}.orders:no_arguments", "must take the payload as its first parameter"),
        ("{package}.bad:anything", "importing {package}.bad failed: ZeroDivisionError"),
        ("{package}.nothing:f", "No module named"),
        ("nowhere_at_all:f", "no module 'nowhere_at_all' in the project directory"),
        ("not a reference", "function must look like package.module:function"),
    ],
)
def test_lint_refuses_what_cannot_be_loaded(package, tmp_path, function, message):
    function, message = function.format(package=package), message.format(package=package)
    with pytest.raises(ValidationError) as caught:
        build_component("step", f"python: {{function: '{function}'}}", tmp_path)
    assert message in str(caught.value)


def test_project_directory_is_not_left_on_sys_path(package, tmp_path, step_of):
    step_of(f"python: {package}.orders:enrich")
    assert str(tmp_path.resolve()) not in sys.path
