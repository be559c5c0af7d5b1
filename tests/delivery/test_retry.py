from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from dovetail.delivery.retry import RetryPolicy

policies = st.builds(
    RetryPolicy,
    attempts=st.integers(1, 20),
    initial=st.floats(0.001, 5),
    max=st.floats(0.01, 120),
    multiplier=st.floats(1, 4),
)


@given(policies, st.integers(1, 200), st.none() | st.floats(0, 500), st.integers(0, 2**32))
def test_backoff_stays_within_zero_and_max(
    policy: RetryPolicy, attempt: int, retry_after: float | None, seed: int
) -> None:
    wait = policy.backoff(attempt, retry_after, random.Random(seed))
    assert 0 <= wait <= policy.max


@given(policies, st.integers(1, 50), st.floats(0, 100), st.integers(0, 2**32))
def test_retry_after_is_a_floor_capped_by_max(
    policy: RetryPolicy, attempt: int, retry_after: float, seed: int
) -> None:
    wait = policy.backoff(attempt, retry_after, random.Random(seed))
    assert wait >= min(retry_after, policy.max)


@given(policies, st.integers(1, 60))
def test_bound_grows_exponentially_until_capped(policy: RetryPolicy, attempt: int) -> None:
    assert policy.bound(attempt + 1) >= policy.bound(attempt)
    assert policy.bound(attempt) <= policy.max


def test_full_jitter_spreads_waits_over_the_whole_interval() -> None:
    policy = RetryPolicy(initial=1.0, max=100.0)
    rng = random.Random(7)
    waits = [policy.backoff(4, rng=rng) for _ in range(2000)]  # bound = 8 s
    assert min(waits) < 0.5 and max(waits) > 7.5
    assert abs(sum(waits) / len(waits) - 4.0) < 0.3


def test_gives_up_after_the_last_attempt() -> None:
    policy = RetryPolicy(attempts=3)
    assert [policy.gives_up(n) for n in (1, 2, 3)] == [False, False, True]
