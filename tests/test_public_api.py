"""The public API is re-exported from ``dovetail`` with a sorted ``__all__``."""

from __future__ import annotations

import dovetail


def test_all_is_sorted_and_complete() -> None:
    assert dovetail.__all__ == sorted(dovetail.__all__)
    for name in dovetail.__all__:
        assert hasattr(dovetail, name), name


def test_public_names_are_listed_before_their_first_use() -> None:
    assert set(dovetail.__all__) <= set(dir(dovetail))
