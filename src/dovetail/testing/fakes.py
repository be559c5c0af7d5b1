"""In-process stand-ins for a flow's edges: a list source and capturing sinks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dovetail.core.ack import Settlement
from dovetail.core.component import Emit
from dovetail.core.envelope import Envelope, SourcePosition


class ListSource:
    """Emits the given payloads (or prepared envelopes) in batches, then ends.

    Acks are counted in ``acked`` so tests can check that every message was settled.
    """

    def __init__(self, items: Sequence[Any], *, batch_size: int = 500, ref: str = "list") -> None:
        self.items = list(items)
        self.batch_size = batch_size
        self.ref = ref
        self.acked = 0

    async def _ack(self) -> None:
        self.acked += 1

    def _envelope(self, index: int, item: Any) -> Envelope:
        if isinstance(item, Envelope):
            return item
        return Envelope(
            payload=item,
            settlement=Settlement(self._ack),
            position=SourcePosition(kind="list", ref=self.ref, offset=index),
        )

    async def open(self) -> None:
        return None

    async def run(self, emit: Emit) -> None:
        for start in range(0, len(self.items), self.batch_size):
            chunk = self.items[start : start + self.batch_size]
            await emit([self._envelope(start + i, item) for i, item in enumerate(chunk)])

    async def commit(self) -> None:
        return None

    async def close(self) -> None:
        return None


class CaptureSink:
    """Records delivered payloads instead of sending them; can fail chosen messages."""

    def __init__(self, name: str = "capture") -> None:
        self.name = name
        self.received: list[Any] = []
        self.envelopes: list[Envelope] = []
        self.fail_with: dict[int, BaseException] = {}
        """Planned failures by 0-based write call index (whole batch)."""
        self.calls = 0

    async def open(self) -> None:
        return None

    async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
        call = self.calls
        self.calls += 1
        if call in self.fail_with:
            raise self.fail_with[call]
        for envelope in batch:
            self.received.append(envelope.payload)
            self.envelopes.append(envelope)
        return [None] * len(batch)

    async def close(self) -> None:
        return None
