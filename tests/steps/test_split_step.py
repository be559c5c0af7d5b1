"""split: one child per array element, include fields, ack when every child settled."""

from __future__ import annotations

import anyio

from dovetail.core.ack import Settlement
from dovetail.core.envelope import Envelope

ORDER = {"id": "A1", "currency": "EUR", "lines": [{"sku": "x", "qty": 1}, {"sku": "y", "qty": 2}]}


def test_children_share_correlation_and_carry_included_fields(step_of, run):
    step = step_of("split: {path: lines, include: {order_id: id, currency: currency}}")
    result = run(step, [ORDER], settle=False)
    children = result.outcome.passed
    assert [c.payload for c in children] == [
        {"sku": "x", "qty": 1, "order_id": "A1", "currency": "EUR"},
        {"sku": "y", "qty": 2, "order_id": "A1", "currency": "EUR"},
    ]
    parent = result.inputs[0]
    assert {c.correlation_id for c in children} == {parent.correlation_id}
    assert len({c.id for c in children} | {parent.id}) == 3
    assert ORDER["lines"][0] == {"sku": "x", "qty": 1}  # the input is not modified


def test_parent_is_acked_only_when_every_child_has_settled(step_of):
    step = step_of("split: lines")

    async def scenario() -> list[str]:
        events: list[str] = []

        async def ack() -> None:
            events.append("acked")

        parent = Envelope(payload=ORDER, settlement=Settlement(ack))
        outcome = await step.process([parent])
        first, second = outcome.passed
        await first.settlement.settle()
        events.append("first settled")
        await second.settlement.settle()
        events.append("second settled")
        return events

    assert anyio.run(scenario) == ["first settled", "acked", "second settled"]


def test_children_get_distinct_idempotency_keys(step_of, run):
    step = step_of("split: lines")

    async def scenario() -> list[str]:
        parent = Envelope(payload=ORDER, settlement=Settlement(), headers={"idempotency-key": "A1"})
        outcome = await step.process([parent])
        return [child.headers["idempotency-key"] for child in outcome.passed]

    keys = anyio.run(scenario)
    assert len(set(keys)) == 2
    assert all(key.startswith("A1/") for key in keys)


def test_empty_array_filters_the_message_and_acks_it(step_of, run):
    result = run(step_of("split: lines"), [{"lines": []}])
    assert result.outcome.dropped == result.inputs
    assert result.outcome.passed == []
    assert result.acked == [0]


def test_not_an_array_missing_or_scalar_children_with_include_fail(step_of, run):
    result = run(
        step_of("split: {path: lines, include: {id: id}}"),
        [
            {"lines": "x"},
            {"other": 1},
            {"id": 1, "lines": [{"a": 1}, 2]},
            {"lines": {"sku": "x"}},
        ],
    )
    assert result.reasons == [
        "split: 'lines' is a string, not an array",
        "split: 'lines' is missing; expected an array",
        "split: include needs object elements, but element 1 of 'lines' is a int",
        "split: 'lines' is an object, not an array",
    ]
    assert all(e.failure.error_class == "PermanentError" for e in result.outcome.failed)
    assert sorted(result.acked) == [0, 1, 2, 3]


def test_filter_expression_with_brackets_keeps_a_single_match_an_array(step_of, run):
    result = run(step_of("split: 'lines[qty > 1][]'"), [ORDER])
    assert result.payloads == [{"sku": "y", "qty": 2}]


def test_scalar_elements_split_without_include(step_of, run):
    result = run(step_of("split: tags"), [{"tags": ["a", "b", "c"]}])
    assert result.payloads == ["a", "b", "c"]
    assert result.acked == [0]
