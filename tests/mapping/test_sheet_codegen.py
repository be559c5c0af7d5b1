"""The generated sheet function: sources read directly, steps bound at compile time.

Paths into nested objects are read with ``dict.get`` in the generated code, falling back to
JSONata for anything that is not an object; the property below holds it to the reference
reading (the path walked key by key) on random nested payloads, objects or not. The inlined
fast paths of the text transforms must equal calling the transform.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dovetail.mapping.jsonata import compile_expression
from dovetail.mapping.sheet import compile_sheet, load_sheet
from dovetail.mapping.transforms import FAST_PATHS, TransformFailed, build_transform, parse_chain

HEADER = "target,source,transform,required,note\n"
KEYS = ("a", "b", "c")
PATHS = ["a", "b", "a.b", "a.c", "b.a.c", "a.b.c"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.text(alphabet="ab ", max_size=3)
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)
    ),
    max_leaves=8,
)
payloads = st.one_of(st.dictionaries(st.sampled_from(KEYS), values, max_size=3), values)


def compile_text(folder: Path, text: str) -> Any:
    path = folder / "sheet.csv"
    path.write_text(text, encoding="utf-8")
    return compile_sheet(load_sheet(path, name="sheet.csv"), folder)


def reference_read(payload: Any, path: str) -> Any:
    """A dotted path walked key by key through objects (a null on the way reads as null);
    anything else, or a payload that is not an object, is read with JSONata."""
    keys = path.split(".")
    slow = compile_expression(path).evaluate
    if len(keys) == 1:
        return payload.get(path) if type(payload) is dict else slow(payload)
    value = payload
    for key in keys:
        if type(value) is dict:
            value = value.get(key)
        elif value is None:
            return None
        else:
            return slow(payload)
    return value


@pytest.fixture(scope="module")
def paths_mapping(tmp_path_factory: pytest.TempPathFactory) -> Any:
    rows = "".join(f"t{n},{path},,no,\n" for n, path in enumerate(PATHS))
    return compile_text(tmp_path_factory.mktemp("sheet"), HEADER + rows)


@settings(max_examples=300, deadline=None)
@given(payload=payloads)
def test_paths_read_like_the_reference_on_any_payload(paths_mapping: Any, payload: Any) -> None:
    result = paths_mapping(payload)

    expected = {f"t{n}": reference_read(payload, path) for n, path in enumerate(PATHS)}
    assert result == expected


@pytest.mark.parametrize("name", sorted(FAST_PATHS))
@settings(max_examples=200, deadline=None)
@given(value=st.one_of(values, st.floats(allow_nan=False), st.text(max_size=4)))
def test_fast_paths_equal_calling_the_transform(name: str, value: Any) -> None:
    (call,) = parse_chain(f"{name}:x" if name == "default" else name)
    step = build_transform(call, lambda table: pytest.fail("no tables"))
    template = FAST_PATHS[name].format(v="value", f="step")
    assert outcome(lambda: eval(template, {"step": step, "value": value})) == outcome(
        lambda: step(value)
    )


def outcome(run: Any) -> tuple[type, Any]:
    """(type, value) of what ``run()`` returns, or the class of the exception it raises."""
    try:
        result = run()
    except TransformFailed as exc:
        return type(exc), str(exc)
    return type(result), result


def count_python_calls(function: Any, argument: Any) -> int:
    """How many Python-level functions ``function(argument)`` calls (builtins not counted)."""
    calls = 0

    def profile(frame: FrameType, event: str, _arg: object) -> None:
        nonlocal calls
        if event == "call":
            calls += 1

    sys.setprofile(profile)
    try:
        function(argument)
    finally:
        sys.setprofile(None)
    return calls - 1  # the function itself


def test_paths_and_text_transforms_run_without_a_call_per_cell(tmp_path: Path) -> None:
    mapping = compile_text(
        tmp_path,
        HEADER
        + "id,order_id,int,yes,\n"
        + "email,customer.email,trim|lower,yes,\n"
        + "country,country,upper,no,\n"
        + "city,address.city,trim,no,\n"
        + "currency,currency,default:EUR|upper,no,\n",
    )
    payload = {
        "order_id": 7,
        "customer": {"email": " Ada@X.org "},
        "country": "nl",
        "address": {"city": " Delft"},
        "currency": "eur",
    }

    assert mapping(payload) == {
        "id": 7,
        "email": "ada@x.org",
        "country": "NL",
        "city": "Delft",
        "currency": "EUR",
    }
    assert count_python_calls(mapping, payload) == 0
