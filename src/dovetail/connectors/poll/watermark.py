"""The incremental watermark of a poll: advanced only over settled records.

Every polled record gets a sequence number; an ``OrderedAcker`` turns their settlements
(in any order) into the contiguous settled prefix. Records are grouped in *segments* (one
whole poll, or one page when the API returns records in watermark order), each with the
highest watermark value it contained. A segment's value becomes the settled watermark only
once every record up to the segment's end is settled, so a crash can never skip a record
that had not been delivered yet: the next start polls again from the settled watermark.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from dovetail.core.ack import OrderedAcker

WatermarkValue = str | int | float
"""A watermark: a number, or a string compared as text (ISO 8601 times sort correctly)."""


def later(a: WatermarkValue | None, b: WatermarkValue | None) -> WatermarkValue | None:
    """The later of two watermark values (numbers numerically, otherwise as text)."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a if a >= b else b
    return a if str(a) >= str(b) else b


def watermark_of(value: Any) -> WatermarkValue | None:
    """A record's watermark value, or None when the field is missing or not a scalar."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int | float):
        return value
    return None


def as_param(value: WatermarkValue) -> str:
    """The query-parameter form of a watermark (integral floats without ``.0``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class WatermarkTracker:
    """Issues sequence numbers to polled records and tracks the settled watermark.

    ``settled`` is what may be persisted (every record up to it is settled); ``latest`` is
    the highest value of every *completely fetched* segment, settled or not, which the next
    poll asks from so records in flight are not fetched twice.
    """

    def __init__(self, start: WatermarkValue | None) -> None:
        self.settled: WatermarkValue | None = start
        self.latest: WatermarkValue | None = start
        self._acker = OrderedAcker(0)
        self._next_seq = 0
        self._segments: deque[tuple[int, WatermarkValue | None]] = deque()

    def issue(self) -> int:
        """The next sequence number, for a record about to be emitted."""
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def close_segment(self, value: WatermarkValue | None) -> None:
        """Every record issued so far belongs to a segment whose highest value is ``value``."""
        if value is None:
            return
        self.latest = later(self.latest, value)
        self._segments.append((self._next_seq, value))
        self._release()

    def settle(self, seq: int) -> None:
        """Record ``seq`` as settled (delivered, filtered or dead-lettered)."""
        if self._acker.settle_sync(seq):
            self._release()

    @property
    def unsettled(self) -> int:
        """Issued records not yet settled."""
        return self._next_seq - self._acker.watermark - self._acker.outstanding

    def _release(self) -> None:
        prefix = self._acker.watermark
        while self._segments and self._segments[0][0] <= prefix:
            _, value = self._segments.popleft()
            self.settled = later(self.settled, value)
