"""Hypothesis strategies for the values sources and steps hand to the store, and exact equality."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

any_text = st.text(st.characters(codec=None, categories=None), max_size=12)
"""Any string, lone surrogates and NUL included (``st.text()`` leaves surrogates out)."""

keys = st.one_of(any_text, st.sampled_from(["$dovetail:codec", "value", "v", "$type"]))
"""Object keys: any string, and the ones the codec's own tags use."""

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(allow_nan=True, allow_infinity=True),
    any_text,
)
"""What the JSON readers produce (any integer: openapi-core casts path and query parameters to
Python ints of any size), plus the floats Python can hold (NaN and infinities included)."""

python_scalars = st.one_of(
    st.binary(max_size=12),
    st.decimals(allow_nan=False),
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())),
    st.dates(),
    st.times(),
    st.timedeltas(),
)
"""Values a ``python`` step may put in a payload."""


def json_values(leaves: st.SearchStrategy[Any] = scalars) -> st.SearchStrategy[Any]:
    """Nested lists and objects over ``leaves`` (objects keyed by any string, tag-like keys too)."""
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(keys, inner, max_size=4),
        ),
        max_leaves=12,
    )


reader_values = json_values()
payloads = json_values(st.one_of(scalars, python_scalars))
non_str_keyed = st.dictionaries(st.one_of(st.integers(), st.none(), st.booleans()), scalars)


def same(left: Any, right: Any) -> bool:
    """Equal with the same types all the way down, NaN equal to NaN (and a NaN Decimal to one)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, float) and math.isnan(left):
        return math.isnan(right)
    if isinstance(left, Decimal) and left.is_nan():
        return bool(right.is_nan())
    if isinstance(left, list):
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict):
        return list(left) == list(right) and all(same(left[k], right[k]) for k in left)
    if isinstance(left, float):
        return left == right and math.copysign(1, left) == math.copysign(1, right)
    return bool(left == right)
