"""Writing a message's recorded attempts into the journal and into its history.

The sink delivery keeps, on each envelope, the attempts that did not settle it (``Attempt``:
failed and retried in place, or a renewed token). When the message settles, the runner turns
them into journal events written with the settlement, and into history entries of its dead
letter or parked message; causes are masked with the flow's policy like any reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dovetail.core.attempts import Attempt
from dovetail.core.envelope import Envelope
from dovetail.observability.masking import MaskPolicy
from dovetail.store.base import BatchRecord, JournalEvent


def _cause(envelope: Envelope, attempt: Attempt, mask: MaskPolicy) -> str:
    return mask.text(attempt.cause, payload=envelope.original)


def attempt_history(envelope: Envelope, step: str, mask: MaskPolicy) -> list[dict[str, Any]]:
    """History entries (dead letter, parked message) for the attempts recorded on
    ``envelope`` and not yet journaled: one per attempt, oldest first."""
    entries: list[dict[str, Any]] = []
    for attempt in envelope.attempts:
        entry: dict[str, Any] = {
            "at": attempt.at,
            "step": step,
            "event": attempt.event,
            "reason": _cause(envelope, attempt, mask),
            "attempt": attempt.attempt,
        }
        if attempt.error_class is not None:
            entry["error_class"] = attempt.error_class
        if attempt.retry_in is not None:
            entry["retry_in"] = round(attempt.retry_in, 3)
        entries.append(entry)
    return entries


def journal_attempts(record: BatchRecord, envelope: Envelope, step: str, mask: MaskPolicy) -> None:
    """Add one journal event per attempt recorded on ``envelope`` to ``record`` (written
    with the settlement: no transaction of their own), then forget them on the envelope."""
    for attempt in envelope.attempts:
        detail = attempt.as_detail() | {"cause": _cause(envelope, attempt, mask)}
        record.journal.append(
            JournalEvent(
                message_id=envelope.id,
                correlation_id=envelope.correlation_id,
                flow=record.flow,
                event=attempt.event,
                step=step,
                detail=detail,
                at=datetime.fromtimestamp(attempt.at, UTC),
            )
        )
    envelope.attempts = []
