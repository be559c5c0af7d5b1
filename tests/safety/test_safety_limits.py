"""Limits on untrusted input: sizes, nesting depth, CSV field size, excerpts."""

from __future__ import annotations

import csv
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dovetail.errors import PayloadRejected
from dovetail.safety.limits import (
    check_depth,
    check_size,
    ensure_csv_field_limit,
    excerpt,
    format_bytes,
    nesting_depth,
)


def test_check_size_names_the_limit_and_what_was_found() -> None:
    check_size(1024, 1024)
    with pytest.raises(
        PayloadRejected, match=r"record is 1\.5 KiB, larger than the limit of 1 KiB"
    ):
        check_size(1536, 1024)


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 bytes"), (1023, "1023 bytes"), (1024, "1 KiB"), (64 * 1024 * 1024, "64 MiB")],
)
def test_format_bytes(size: int, text: str) -> None:
    assert format_bytes(size) == text


def nested(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@given(st.integers(min_value=0, max_value=200))
def test_nesting_depth_counts_levels(depth: int) -> None:
    assert nesting_depth(nested(depth), 1000) == depth


def test_nesting_depth_of_a_hostile_document_does_not_recurse() -> None:
    assert nesting_depth(nested(100_000), 64) == 65


def test_check_depth_rejects_deeper_than_the_limit() -> None:
    check_depth(nested(3), 3)
    with pytest.raises(PayloadRejected, match="nesting deeper than the limit of 3 levels"):
        check_depth(nested(4), 3)


def test_csv_field_limit_is_only_ever_raised() -> None:
    before = csv.field_size_limit()
    ensure_csv_field_limit(before + 10)
    assert csv.field_size_limit() == before + 10
    ensure_csv_field_limit(5)
    assert csv.field_size_limit() == before + 10


def test_excerpt_cuts_long_text_and_says_so() -> None:
    assert excerpt("abc", 5) == "abc"
    assert excerpt("abcdefgh", 5) == "abcde... [truncated, 3 more characters]"
