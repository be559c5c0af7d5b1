from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dovetail.config.types import parse_duration, parse_rate


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("60s", 60.0), ("2m", 120.0), ("1h", 3600.0), ("1.5d", 129600.0), (3, 3.0)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["fast", "-1s", "1 week", True, -2, "5x"])
def test_bad_durations_are_rejected_with_an_example(bad: object) -> None:
    with pytest.raises(ValueError, match=r"500ms|negative"):
        parse_duration(bad)


@pytest.mark.parametrize(("text", "per_second"), [("20/s", 20.0), ("600/m", 10.0), (5, 5.0)])
def test_rates(text: object, per_second: float) -> None:
    assert parse_rate(text) == per_second


@given(st.integers(min_value=1, max_value=10**6), st.sampled_from(["ms", "s", "m", "h"]))
def test_duration_units_scale(n: int, unit: str) -> None:
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    assert parse_duration(f"{n}{unit}") == pytest.approx(n * scale)
