"""Acknowledgement: fan-in of per-message settlements into one ack to the source.

A source message is acked only when every message derived from it (split children, copies
routed to several sinks) is *settled*: delivered, filtered out or durably dead-lettered.
``OrderedAcker`` turns out-of-order settlements into a checkpoint that only advances over the
contiguous settled prefix, which is what file sources persist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from dovetail.types import AckFn


class Settlement:
    """Counts the outstanding parts of one source message and acks it when none remain.

    ``observe`` (optional) is called with each settled part (an envelope whose ``outcome`` the
    runner set: delivered, filtered, duplicate_skipped, dead_lettered or parked) before the
    ack; a request/response source uses it to answer with the outcome of every part.
    """

    __slots__ = ("_ack", "_done", "_observe", "pending")

    def __init__(
        self, ack: AckFn | None = None, observe: Callable[[Any], None] | None = None
    ) -> None:
        self._ack = ack
        self._observe = observe
        self.pending = 1
        self._done = False

    def add(self, parts: int) -> None:
        """Register ``parts`` more outstanding parts (a split child, an extra sink)."""
        if self._done:
            raise RuntimeError("settlement already completed")
        self.pending += parts

    async def settle(self, part: Any = None) -> None:
        """Settle one part (``part``: its envelope, for ``observe``); the last part acks the
        source message."""
        if self.release(part):
            await self.acknowledge()

    def release(self, part: Any = None) -> bool:
        """Settle one part like ``settle`` but without acking: True when it was the last part
        and the source message must now be acked with ``acknowledge`` (no await per part)."""
        if self._observe is not None and part is not None:
            self._observe(part)
        self.pending -= 1
        if self.pending == 0 and not self._done:
            self._done = True
            return self._ack is not None
        return False

    async def acknowledge(self) -> None:
        """Ack the source message, once ``release`` returned True."""
        if self._ack is not None:
            await self._ack()

    @property
    def done(self) -> bool:
        return self._done


class OrderedAcker:
    """Tracks settlement of sequence numbers and reports the contiguous settled prefix.

    Sequence numbers start at ``start`` and are issued by the source in order. ``settle(n)``
    may arrive in any order; ``watermark`` is the lowest sequence number not yet settled, so
    every number below it is settled. ``on_advance`` is awaited whenever the watermark moves.
    """

    def __init__(
        self, start: int = 0, on_advance: Callable[[int], Awaitable[None]] | None = None
    ) -> None:
        self.watermark = start
        self._settled: set[int] = set()
        self._on_advance = on_advance

    def settle_sync(self, seq: int) -> bool:
        """Mark ``seq`` settled; return True when the watermark advanced."""
        if seq < self.watermark or seq in self._settled:
            return False
        self._settled.add(seq)
        moved = False
        while self.watermark in self._settled:
            self._settled.discard(self.watermark)
            self.watermark += 1
            moved = True
        return moved

    async def settle(self, seq: int) -> None:
        """Mark ``seq`` settled and notify ``on_advance`` when the prefix grew."""
        if self.settle_sync(seq) and self._on_advance is not None:
            await self._on_advance(self.watermark)

    @property
    def outstanding(self) -> int:
        """How many settled numbers wait above a gap."""
        return len(self._settled)
