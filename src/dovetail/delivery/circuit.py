"""A circuit breaker per sink: stop hammering a partner that is down, probe it now and then.

States::

    closed ──(failures in a row ≥ threshold)──▶ open ──(reset elapsed)──▶ half-open
      ▲                                                                      │
      └──────────────────────(probe delivered)───────────────────────────────┤
                             (probe failed) ──▶ open again ◀──────────────────┘

While open, nothing is sent and no delivery attempt is spent: the batch waits, which slows
the source (back-pressure) instead of filling the dead-letter queue with messages that
would have gone through a minute later. Only transient failures count; a 4xx means the
partner is up and answering.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from dovetail.delivery.clock import Clock

State = Literal["closed", "open", "half_open"]


@dataclass
class CircuitBreaker:
    """Tracks consecutive transient failures of one sink and gates its writes."""

    threshold: int = 5
    reset_after: float = 30.0
    state: State = "closed"
    failures: int = 0
    opened_at: float = 0.0
    transitions: list[State] = field(default_factory=list)

    def _move(self, state: State) -> None:
        if state != self.state:
            self.state = state
            self.transitions.append(state)

    async def wait_until_allowed(self, clock: Clock) -> bool:
        """Wait while open; returns True when the next write is a half-open probe."""
        if self.state == "open":
            remaining = self.opened_at + self.reset_after - clock.monotonic()
            if remaining > 0:
                await clock.sleep(remaining)
            self._move("half_open")
        return self.state == "half_open"

    def record(self, *, delivered: bool, transient_failure: bool, clock: Clock) -> None:
        """Feed the outcome of one write call."""
        if delivered:
            self.failures = 0
            self._move("closed")
            return
        if not transient_failure:
            return
        self.failures += 1
        if self.state == "half_open" or self.failures >= self.threshold:
            self.opened_at = clock.monotonic()
            self._move("open")
