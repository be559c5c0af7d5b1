"""What one run of a flow did (``RunSummary``), and how it stops on a halted flow."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from dovetail.errors import DovetailError


class FlowHalted(DovetailError):
    """A message failed permanently in a flow with ``dead_letter: false``; the flow stops."""


@dataclass
class RunSummary:
    """Counts of one run of a flow."""

    flow: str
    received: int = 0
    delivered: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    filtered: int = 0
    dead_lettered: int = 0
    retries: int = 0
    parked: int = 0
    """Messages parked in the store for a later attempt (a long backoff or Retry-After)."""
    redriven: int = 0
    """Parked messages the retry pump sent again."""
    reasons: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    restarts: int = 0
    """Times the flow was started again after a crash (``runtime/supervisor.py``)."""
    error: str | None = None
    """The last error that stopped the flow; ``None`` when it never failed."""

    @property
    def delivered_total(self) -> int:
        return sum(self.delivered.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "flow": self.flow,
            "received": self.received,
            "delivered": dict(self.delivered),
            "duplicates_skipped": self.duplicates,
            "filtered": self.filtered,
            "dead_lettered": self.dead_lettered,
            "retries": self.retries,
            "parked": self.parked,
            "redriven": self.redriven,
            "dead_letter_reasons": dict(self.reasons),
            "seconds": round(self.seconds, 3),
            "restarts": self.restarts,
            "error": self.error,
        }


ProgressFn = Callable[[RunSummary], None]


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first real error inside a (nested) exception group, for a readable failure."""
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return first_error(error)
        return error
    return group
