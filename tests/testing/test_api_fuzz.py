"""The api fuzz run: schemathesis against a real ``dovetail run``, and how it judges answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from dovetail.testing.api_fuzz import (
    GOOD_KEY,
    WRONG_KEY,
    FuzzOutcome,
    FuzzPlan,
    FuzzTarget,
    Round,
    RoundResult,
    _judge,
    fuzz,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "api"


@pytest.mark.timeout(300)
def test_a_short_fuzz_run_of_the_example_passes() -> None:
    outcome = fuzz(
        FuzzTarget(EXAMPLE), FuzzPlan(requests=150, max_examples=60, parallel=1, budget=200)
    )
    assert outcome.problems == [], "\n".join(outcome.problems) + outcome.log_tail
    assert outcome.requests >= 150
    assert outcome.statuses[200] > 0  # the right key gets in
    assert outcome.statuses[401] > 0  # a wrong or missing key does not
    assert outcome.statuses[400] > 0  # invalid data is refused


class _Running:
    """Stands in for the ``dovetail run`` process: still running."""

    returncode = None

    def poll(self) -> None:
        return None


def judged(made: list[tuple[int, str | None, str]], code: int = 0) -> FuzzOutcome:
    outcome = FuzzOutcome()
    done = RoundResult(Round("r", [], "all", 1, 0), code, "output", made, 1.0)
    _judge(done, outcome, _Running())  # type: ignore[arg-type]
    return outcome


def test_a_success_without_the_right_key_fails_the_run() -> None:
    outcome = judged(
        [
            (200, GOOD_KEY, "PUT /orders/1"),
            (201, WRONG_KEY, "PUT /orders/2"),
            (204, None, "PUT /orders/3"),
            (401, WRONG_KEY, "PUT /orders/4"),
        ]
    )
    assert outcome.requests == 4
    assert outcome.problems == [
        "201 to PUT /orders/2 sent with a wrong key",
        "204 to PUT /orders/3 sent with no key",
    ]


def test_a_server_error_or_a_failed_round_fails_the_run() -> None:
    outcome = judged([(500, GOOD_KEY, "PUT /orders/5")], code=1)
    assert outcome.problems[0] == "500 to PUT /orders/5"
    assert outcome.problems[1].startswith("schemathesis round 'r' failed")
