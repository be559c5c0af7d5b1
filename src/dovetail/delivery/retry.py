"""Retry scheduling: exponential backoff with full jitter, capped, honouring Retry-After.

The wait before attempt ``n + 1`` is uniform in ``[0, min(max, initial * multiplier**(n-1))]``
("full jitter"), so a partner recovering from an outage is not hit by synchronised retries.
A ``Retry-After`` from the partner is a floor for that wait (still capped by ``max``).
Written here rather than taken from tenacity because the runner schedules whole batches of
messages, each with its own attempt count and Retry-After, instead of retrying one call.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how long to wait between delivery attempts of one message."""

    attempts: int = 5
    initial: float = 0.5
    max: float = 60.0
    multiplier: float = 2.0

    def bound(self, attempt: int) -> float:
        """Upper bound of the wait after failed attempt number ``attempt`` (1-based)."""
        exponent = max(0, attempt - 1)
        if exponent > 64:
            return self.max
        return min(self.max, self.initial * self.multiplier**exponent)

    def backoff(
        self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait after failed attempt ``attempt``; Retry-After is a floor."""
        draw = (rng or random).uniform(0.0, self.bound(attempt))
        if retry_after is not None and retry_after > 0:
            draw = max(draw, retry_after)
        return min(draw, self.max)

    def gives_up(self, attempt: int) -> bool:
        """True when ``attempt`` was the last one allowed."""
        return attempt >= self.attempts
