from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from dovetail.observability.masking import MASK, mask_paths


def test_declared_paths_are_masked_through_lists() -> None:
    payload = {"customer": {"email": "a@b.c", "name": "A"}, "lines": [{"email": "x@y.z"}, {}]}
    masked = mask_paths(payload, ["customer.email", "lines.email", "missing.path"])
    assert masked == {
        "customer": {"email": MASK, "name": "A"},
        "lines": [{"email": MASK}, {}],
    }
    assert payload["customer"]["email"] == "a@b.c"  # the original is not modified


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=20,
)


@given(json_values, st.lists(st.text(min_size=1, max_size=6), max_size=3))
def test_masking_never_fails_and_keeps_shape(payload: Any, paths: list[str]) -> None:
    masked = mask_paths(payload, paths)
    assert type(masked) is type(payload)
