"""Identifiers: time-ordered UUIDv7 message ids and W3C trace context."""

from __future__ import annotations

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
_LOW62 = (1 << 62) - 1
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def uuid7() -> str:
    """Return a new RFC 9562 UUIDv7 as a string: millisecond time first, so ids sort by time.

    The 74 random bits come from ``random`` (not a CSPRNG): ids must be unique and ordered,
    not secret, and this keeps the per-message cost near a microsecond.
    """
    ms = time.time_ns() // 1_000_000
    rand = _bits(74)
    low = 0x8000_0000_0000_0000 | (rand & _LOW62)  # RFC variant bits, then 62 random bits
    text = f"{ms & 0xFFFF_FFFF_FFFF:012x}7{rand >> 62:03x}{low:016x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def trace_id_from_traceparent(header: str | None) -> str | None:
    """Return the trace id of a valid W3C ``traceparent`` header, else ``None``."""
    if not header:
        return None
    match = _TRACEPARENT.match(header.strip().lower())
    if match is None or match.group(1) == "0" * 32:
        return None
    return match.group(1)


def new_trace_id() -> str:
    """Return a fresh 32-hex-digit trace id, usable as a correlation id."""
    return os.urandom(16).hex()


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
