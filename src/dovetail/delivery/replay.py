"""Replay: re-drive dead-lettered messages through the flow's current version.

Each dead letter becomes an envelope with its original message id, payload, correlation id,
headers (including its idempotency key) and DLQ id, so ``dovetail trace`` shows the first run
and every replay of a message as one journey. Delivered or filtered -> the entry is marked
``replayed``; failed again -> the same entry is reopened with the new failure appended to its
history. A message that failed at one sink is replayed to that sink only; idempotency keys
stop a second delivery of anything already delivered.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from dovetail.core.ack import Settlement
from dovetail.core.component import Emit
from dovetail.core.envelope import Envelope, SourcePosition
from dovetail.store.base import DeadLetter, JournalEvent


def envelope_from(letter: DeadLetter) -> Envelope:
    """The envelope that re-drives ``letter``."""
    position = SourcePosition.from_dict(letter.source_position, "dlq")
    return Envelope(
        payload=letter.payload,
        settlement=Settlement(),
        id=letter.message_id,
        correlation_id=letter.correlation_id,
        headers=dict(letter.headers),
        position=position,
        dead_letter_id=letter.id,
    )


class ReplaySource:
    """A source over a list of dead letters (replay never acks anything upstream)."""

    def __init__(self, letters: Sequence[DeadLetter], *, batch_size: int = 500) -> None:
        self.letters = list(letters)
        self.batch_size = batch_size

    async def open(self) -> None:
        return None

    async def run(self, emit: Emit) -> None:
        for start in range(0, len(self.letters), self.batch_size):
            chunk = self.letters[start : start + self.batch_size]
            await emit([envelope_from(letter) for letter in chunk])

    async def commit(self) -> None:
        return None

    async def close(self) -> None:
        return None


def replay_events(letters: Sequence[DeadLetter]) -> list[JournalEvent]:
    """The ``replayed`` journal event of each letter, written as its replay starts: the
    journey shows the dead letter, the replay, then what the replay did."""
    now = datetime.now(UTC)
    return [
        JournalEvent(
            message_id=letter.message_id,
            correlation_id=letter.correlation_id,
            flow=letter.flow,
            event="replayed",
            step="dlq",
            detail={"replay_of": letter.id},
            at=now,
        )
        for letter in letters
    ]


def replayable(letter: DeadLetter) -> bool:
    """Messages rejected by the source itself (malformed records) need their input fixed."""
    return letter.step != "source"
