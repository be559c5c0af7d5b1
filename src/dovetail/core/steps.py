"""Base classes that turn per-message functions into batch steps with failure marks."""

from __future__ import annotations

from collections.abc import Sequence

from dovetail.core.component import StepOutcome
from dovetail.core.envelope import Envelope, Failure
from dovetail.errors import MessageError, PermanentError, TransientError
from dovetail.mapping.failures import error_kind
from dovetail.observability.redaction import redact

_NOT_STEPS = frozenset({"source", "delivery"})
"""Failure places that are not steps: their reasons are not prefixed with a step name."""


def mark_failed(envelope: Envelope, step: str, error: BaseException) -> None:
    """Record ``error`` on ``envelope`` as a failure of ``step`` (Transient or Permanent).

    Registered secrets are redacted from the reason and detail here, in every encoded form,
    so no stored dead letter, parked entry, history or journal detail holds one (a partner
    may echo a credential in the answer a reason quotes).

    The reason is ``MessageError.reason`` (short, no payload values). Any other exception's
    text may quote the payload, so its reason is only the kind of error (``invalid value``)
    and its class and text go to ``detail`` (shown masked by ``dovetail dlq show``). A step's
    reasons start with the step's name (``map: field order_date: invalid date``).
    """
    if isinstance(error, MessageError):
        reason, detail = error.reason, error.detail
    else:
        reason, detail = error_kind(error), f"{type(error).__name__}: {error}"
    if ":" not in step and step not in _NOT_STEPS and not reason.startswith(f"{step}:"):
        reason = f"{step}: {reason}"
    envelope.failure = Failure(
        step=step,
        reason=redact(reason),
        error_class=type(error).__name__,
        permanent=not isinstance(error, TransientError),
        detail=None if detail is None else redact(detail),
        retry_after=getattr(error, "retry_after", None),
    )


class MessageStep:
    """A step written as ``apply(payload) -> payload`` per message.

    Raise a ``PermanentError`` for bad data; any other exception is also treated as a
    permanent failure of this message (its class name is recorded), so one bad record never
    stops the flow. Return ``DROP`` to filter the message out.
    """

    name: str = "step"

    def apply(self, envelope: Envelope) -> object:
        raise NotImplementedError

    async def process(self, batch: Sequence[Envelope]) -> StepOutcome:
        outcome = StepOutcome()
        passed, dropped, failed = outcome.passed, outcome.dropped, outcome.failed
        for envelope in batch:
            try:
                result = self.apply(envelope)
            except Exception as exc:  # a bad message becomes data, never unwinds the batch
                mark_failed(envelope, self.name, exc)
                failed.append(envelope)
                continue
            if result is DROP:
                dropped.append(envelope)
            else:
                envelope.payload = result
                passed.append(envelope)
        return outcome


class _Drop:
    """Sentinel type: the message is filtered out (a control signal, not an error)."""

    def __repr__(self) -> str:
        return "DROP"


DROP = _Drop()

__all__ = ["DROP", "MessageStep", "PermanentError", "mark_failed"]
