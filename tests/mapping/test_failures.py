"""Failure reasons of expressions: the field is found from the failure's position, and the
kind of error never carries the value."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dovetail.errors import MappingFailed
from dovetail.mapping.failures import field_at
from dovetail.mapping.jsonata import compile_expression

names = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
values = st.sampled_from(["1", "'x'", "a.b", "$sum(lines.n)", 'c ? "p" : "q"', "[1, 2]"])


@given(
    st.lists(st.tuples(names, values), min_size=1, max_size=5, unique_by=lambda kv: kv[0]),
    st.data(),
)
def test_field_at_names_the_key_whose_value_holds_the_position(
    fields: list[tuple[str, str]], data: st.DataObject
) -> None:
    chosen = data.draw(st.integers(0, len(fields) - 1))
    nested = data.draw(st.booleans())
    parts = []
    target = 0
    for index, (key, value) in enumerate(fields):
        text = f'{{"inner": {value}}}' if nested and index == chosen else value
        prefix = ("{" if index == 0 else ", ") + json.dumps(key) + ": "
        if index == chosen:
            target = len("".join(parts)) + len(prefix) + len(text) - 1
        parts.append(prefix + text)
    source = "".join(parts) + "}"
    expected = fields[chosen][0] + (".inner" if nested else "")
    assert field_at(source, target) == expected


def test_no_object_no_field() -> None:
    assert field_at("$number(x)", 8) is None
    assert field_at('{"a": 1}', None) is None


@pytest.mark.parametrize(
    ("source", "data", "reason"),
    [
        ('{"d": $toMillis(d)}', {"d": "31/02/2026"}, "field d: invalid date"),
        ('{"o": {"t": $number(t)}}', {"t": "12,5"}, "field o.t: not a number"),
        ('{"x": n + 1}', {"n": "ten"}, "field x: not a number"),
        ('{"x": $error("no " & n)}', {"n": "secret"}, "field x: rejected by $error()"),
        ("$uppercase(n)", {"n": 5}, "argument of the wrong type"),
    ],
)
def test_a_failed_evaluation_names_field_and_kind_and_keeps_the_text_as_detail(
    source: str, data: dict[str, object], reason: str
) -> None:
    with pytest.raises(MappingFailed) as caught:
        compile_expression(source).evaluate(data)
    assert caught.value.reason == reason
    value = next(iter(data.values()))
    assert str(value) not in caught.value.reason
    assert caught.value.detail is not None and caught.value.detail.startswith("JSONata ")
