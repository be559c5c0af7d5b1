"""Identifiers: time-ordered UUIDv7 message ids and W3C trace context."""

from __future__ import annotations

import itertools
import os
import random
import re
import time
from contextvars import ContextVar

_bits = (
    random.SystemRandom().getrandbits
    if os.environ.get("DOVETAIL_SECURE_IDS")
    else (random.Random().getrandbits)
)
_COUNTER_BITS = 48
"""The counter is the id's last 48 bits (12 hex digits); the 14 bits above it are random."""
_COUNTER_END = 1 << _COUNTER_BITS
_LOW64 = (1 << 64) - 1
_SCRAMBLE = 0x9E37_79B9_7F4A_7C15
"""An odd multiplier: ``n * _SCRAMBLE mod 2**64`` maps distinct counters to distinct values."""
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


class _IdBlock:
    """The ids of one millisecond: a fixed text prefix (time, version, random bits, variant)
    and a counter for the rest."""

    __slots__ = ("counter", "ms", "prefix", "trace_counter", "trace_prefix")

    def __init__(self, ms: int) -> None:
        self.ms = ms
        head = f"{ms & 0xFFFF_FFFF_FFFF:012x}7{_bits(12):03x}{0x8000 | _bits(14):04x}"
        self.prefix = f"{head[:8]}-{head[8:12]}-{head[12:16]}-{head[16:]}-"
        # starts in the lower half of its range: at least 2**47 ids before it runs out
        self.counter = itertools.count(_bits(_COUNTER_BITS - 1))
        # time first, like a UUIDv7: the store's index of correlation ids grows at its end
        self.trace_prefix = f"{ms & 0xFFFF_FFFF_FFFF:012x}{_bits(16):04x}"
        self.trace_counter = itertools.count(_bits(64))


_block = _IdBlock(0)


def _current_block() -> _IdBlock:
    """The block of this millisecond: a new random base whenever the clock moved on."""
    global _block
    block = _block
    if time.time_ns() // 1_000_000 > block.ms:
        block = _block = _IdBlock(time.time_ns() // 1_000_000)
    return block


def uuid7() -> str:
    """Return a new RFC 9562 UUIDv7 as a string: unique, and later ids sort after earlier ones.

    Layout: 48 bits of Unix milliseconds, version 7, 12 random bits, the RFC variant, 14 random
    bits, then a 48-bit counter (RFC 9562 section 6.2, method 2) that starts at a random value
    in each millisecond and counts up within it. So one random draw serves every id of a
    millisecond (a batch), an id costs a counter step and a string format, ids of one process
    are strictly increasing even when the clock steps back (the last millisecond is kept until
    the clock passes it), and two processes (forks reseed) draw independent random bases. The
    random bits come from ``random`` (a CSPRNG with ``DOVETAIL_SECURE_IDS`` set): ids must be
    unique and ordered, not secret.
    """
    global _block
    block = _block
    if time.time_ns() // 1_000_000 > block.ms:
        block = _current_block()
    low = next(block.counter)
    if low >= _COUNTER_END:  # a millisecond's counter ran out: continue in the next one
        block = _block = _IdBlock(block.ms + 1)
        low = next(block.counter)
    return f"{block.prefix}{low:012x}"


def _reseed_after_fork() -> None:
    """A forked process must not repeat its parent's random sequence (nor its blocks)."""
    global _bits, _block
    if not os.environ.get("DOVETAIL_SECURE_IDS"):
        _bits = random.Random().getrandbits
    _block = _IdBlock(0)


os.register_at_fork(after_in_child=_reseed_after_fork)


def trace_id_from_traceparent(header: str | None) -> str | None:
    """Return the trace id of a valid W3C ``traceparent`` header, else ``None``."""
    if not header:
        return None
    match = _TRACEPARENT.match(header.strip().lower())
    if match is None or match.group(1) == "0" * 32:
        return None
    return match.group(1)


def new_trace_id() -> str:
    """Return a fresh 32-hex-digit W3C trace id (never all zeros), usable as a correlation id.

    Made like ``uuid7``: the high 64 bits are the millisecond (48 bits) and 16 random bits drawn
    once per millisecond, so trace ids of later milliseconds sort after earlier ones (the
    store's index of correlation ids grows at its end instead of everywhere); the low 64 bits
    are a counter that starts at a random value, scrambled by a multiplication modulo 2**64 (a
    bijection, so still unique) so that they spread over their whole range, as ratio samplers,
    which compare them against a bound, expect. A trace id costs a counter step, not a system
    call.
    """
    block = _current_block()
    low = next(block.trace_counter) * _SCRAMBLE & _LOW64
    return f"{block.trace_prefix}{low:016x}"


OUTGOING_SPAN_IDS: ContextVar[dict[str, str] | None] = ContextVar(
    "dovetail_outgoing_span_ids", default=None
)
"""While tracing is on, in the task delivering a batch to one sink: the span id (16 hex) of
the sink span of each trace id, so the outgoing ``traceparent`` names it as the parent."""


def make_traceparent(trace_id: str) -> str:
    """Build a ``traceparent`` header continuing ``trace_id``: its parent is the current sink
    span when tracing is on, else a new span id."""
    spans = OUTGOING_SPAN_IDS.get()
    span_id = spans.get(trace_id) if spans else None
    return f"00-{trace_id}-{span_id or os.urandom(8).hex()}-01"


def correlation_id_from_headers(headers: dict[str, str]) -> str:
    """The correlation id of an incoming message: ``traceparent``, then ``x-correlation-id``."""
    from_trace = trace_id_from_traceparent(headers.get("traceparent"))
    if from_trace:
        return from_trace
    explicit = headers.get("x-correlation-id")
    if explicit and len(explicit) <= 128 and explicit.isprintable():
        return explicit
    return new_trace_id()
