"""The file sink's JSON writer keeps every JSON value a source accepts, big integers too."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dovetail.connectors.file.writers import encode_json
from dovetail.errors import PermanentError

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # unbounded: past 64 bits as well
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(st.characters(exclude_categories=["Cs"])), children, max_size=4)
    ),
    max_leaves=20,
)


@given(value=json_values, indent=st.booleans())
def test_every_json_value_is_written_and_reads_back_equal(value: Any, indent: bool) -> None:
    written = encode_json(value, indent=indent)
    assert written.endswith(b"\n")
    assert json.loads(written) == value
    if not indent:
        assert written.count(b"\n") == 1  # one record, one line


def test_an_integer_past_64_bits_is_written_exactly() -> None:
    assert encode_json({"order_id": 10**26}) == b'{"order_id":100000000000000000000000000}\n'


def test_a_value_json_cannot_hold_is_still_refused() -> None:
    with pytest.raises(PermanentError, match="payload cannot be written as JSON"):
        encode_json({"order_id": 10**26, "at": object()})
