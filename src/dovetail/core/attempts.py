"""The delivery attempts of a message that did not settle it: what ``trace`` and the DLQ show.

A message delivered at attempt 7 went through six failed attempts; each one is recorded on
the envelope as an ``Attempt`` (its number, the cause, the wait before the next one) while
the message is retried in place, and the runner writes them as journal events (and into a
dead letter's or parked message's history) with the message's settlement. A sink may also
note a failure it recovered from within one attempt (``HTTP 401 → token renewed``).

A cause is short and never carries payload values: a sink states it with ``with_cause``
(``HTTP 429, Retry-After 2s``, ``timeout after 3s``); otherwise it is the error's reason,
which ``MessageError`` promises is free of payload values.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

AttemptEvent = Literal["attempt_failed", "token_renewed"]
"""``attempt_failed``: the attempt failed and the message is tried again; ``token_renewed``:
the partner rejected the credentials, they were renewed and the request sent again."""

E = TypeVar("E", bound=BaseException)

_CAUSE = "dovetail_cause"


@dataclass(slots=True)
class Attempt:
    """One attempt of a message at a sink that did not settle it."""

    attempt: int
    cause: str
    event: AttemptEvent = "attempt_failed"
    error_class: str | None = None
    retry_in: float | None = None
    """Seconds waited before the next attempt."""
    at: float = field(default_factory=time.time)

    def as_detail(self) -> dict[str, Any]:
        """The journal event's detail (and the history entry's fields)."""
        detail: dict[str, Any] = {"attempt": self.attempt, "cause": self.cause}
        if self.error_class is not None:
            detail["error_class"] = self.error_class
        if self.retry_in is not None:
            detail["retry_in"] = round(self.retry_in, 3)
        return detail


def with_cause(error: E, cause: str) -> E:
    """``error`` marked with the short ``cause`` its attempts are reported with."""
    setattr(error, _CAUSE, cause)
    return error


def cause_of(error: BaseException) -> str:
    """The short cause of a failed attempt: the one given by ``with_cause``, else the error's
    ``reason`` (``MessageError``), else its class name."""
    stated = getattr(error, _CAUSE, None)
    if isinstance(stated, str):
        return stated
    reason = getattr(error, "reason", None)
    return reason if isinstance(reason, str) and reason else type(error).__name__
