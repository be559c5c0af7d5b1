"""Which Kafka offsets may be committed: the contiguous settled prefix of each partition.

Records of a partition are numbered in the order they are received; an ``OrderedAcker`` per
partition turns out-of-order settlements into a watermark, and the offset to commit is the
offset of the last record below the watermark plus one. Offsets need not be contiguous
(compaction, transaction markers): only the receive order matters. A partition taken away
by a rebalance is forgotten with a new generation, so a late ack of one of its records
cannot move a commit made by the partition's next owner.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field

from dovetail.core.ack import OrderedAcker


@dataclass(slots=True)
class _Partition:
    generation: int
    acker: OrderedAcker = field(default_factory=OrderedAcker)
    offsets: deque[int] = field(default_factory=deque)
    """Offsets of the records not yet below the watermark, in receive order."""
    base: int = 0
    """The sequence number of ``offsets[0]``."""
    next_seq: int = 0
    committable: int | None = None
    """The offset to commit next (last settled contiguous offset + 1), if it moved."""


@dataclass(frozen=True, slots=True)
class RecordTicket:
    """What settling one record needs: its partition, generation and sequence number."""

    partition: Hashable
    generation: int
    seq: int


class OffsetTracker:
    """Tracks received and settled records per partition; see the module docstring."""

    def __init__(self) -> None:
        self._partitions: dict[Hashable, _Partition] = {}
        self._generation = 0

    def track(self, partition: Hashable, offset: int) -> RecordTicket:
        """Register a received record; offsets of one partition must increase."""
        state = self._partitions.get(partition)
        if state is None:
            self._generation += 1
            state = self._partitions[partition] = _Partition(self._generation)
        if state.offsets and offset <= state.offsets[-1]:
            raise ValueError(f"offset {offset} of {partition} is not after {state.offsets[-1]}")
        state.offsets.append(offset)
        seq = state.next_seq
        state.next_seq += 1
        return RecordTicket(partition, state.generation, seq)

    def settle(self, ticket: RecordTicket) -> bool:
        """Mark a record settled; True when its partition's committable offset moved."""
        state = self._partitions.get(ticket.partition)
        if state is None or state.generation != ticket.generation:
            return False  # the partition was revoked meanwhile: its new owner commits
        if not state.acker.settle_sync(ticket.seq):
            return False
        last = None
        while state.base < state.acker.watermark:
            last = state.offsets.popleft()
            state.base += 1
        if last is None:
            return False
        state.committable = last + 1
        return True

    def committable(self) -> dict[Hashable, int]:
        """Offsets to commit now (one per partition whose settled prefix grew)."""
        return {
            partition: state.committable
            for partition, state in self._partitions.items()
            if state.committable is not None
        }

    def committed(self, offsets: dict[Hashable, int]) -> None:
        """Record that ``offsets`` were committed (a later settle may move them again)."""
        for partition, offset in offsets.items():
            state = self._partitions.get(partition)
            if state is not None and state.committable == offset:
                state.committable = None

    def revoke(self, partitions: list[Hashable]) -> None:
        """Forget partitions taken away by a rebalance (late acks for them are ignored)."""
        for partition in partitions:
            self._partitions.pop(partition, None)

    def in_flight(self, partition: Hashable) -> int:
        """Received records of ``partition`` not yet in the settled prefix."""
        state = self._partitions.get(partition)
        return len(state.offsets) if state is not None else 0
