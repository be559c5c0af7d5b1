"""Limits on untrusted input: record and file sizes, nesting depth, CSV field size.

Readers call these checks on every record; each raises ``PayloadRejected`` with a short
reason that names the limit and what was found, so the dead-letter entry explains itself.
"""

from __future__ import annotations

import csv
import threading
from dataclasses import dataclass
from typing import Any

from dovetail.errors import PayloadRejected

DEFAULT_MAX_RECORD_BYTES = 1024 * 1024
"""One record (a CSV row, a JSON line, an XML record element) may be at most 1 MiB."""

DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024
"""A document read whole (a JSON file) may be at most 64 MiB."""

DEFAULT_MAX_DEPTH = 64
"""Objects and arrays (or XML elements) may nest at most 64 levels deep."""

DEFAULT_EXPRESSION_SECONDS = 2.0
"""One JSONata evaluation may run at most 2 seconds."""

DEFAULT_EXPRESSION_DEPTH = 300
"""JSONata evaluation may nest at most 300 levels (recursive functions count per call)."""

DEFAULT_EXPRESSION_RANGE = 1_000_000
"""A JSONata range (``[a..b]``) may hold at most a million items."""

EXCERPT_CHARS = 64 * 1024
"""How much raw text of a rejected record is kept for the dead-letter queue."""

_csv_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits a reader enforces; every field has a safe default."""

    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH


def format_bytes(size: int) -> str:
    """``1048576`` -> ``"1 MiB"``; for limit messages."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"  # pragma: no cover - loop always returns


def check_size(size: int, limit: int, what: str = "record") -> None:
    """Raise ``PayloadRejected`` when ``size`` bytes exceed ``limit``."""
    if size > limit:
        raise PayloadRejected(
            f"{what} is {format_bytes(size)}, larger than the limit of {format_bytes(limit)}"
        )


def nesting_depth(value: Any, stop_after: int) -> int:
    """Depth of nested dicts/lists in ``value`` (a scalar is 0); stops counting past ``stop_after``.

    Iterative, so a hostile document cannot exhaust the Python stack.
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > stop_after:
                return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def check_depth(value: Any, limit: int) -> None:
    """Raise ``PayloadRejected`` when ``value`` nests deeper than ``limit`` levels."""
    if nesting_depth(value, limit) > limit:
        raise PayloadRejected(f"nesting deeper than the limit of {limit} levels")


def ensure_csv_field_limit(limit: int) -> None:
    """Let the ``csv`` module read fields up to ``limit`` characters.

    ``csv.field_size_limit`` is process-wide; it is only ever raised, never lowered, so
    readers with different limits coexist. Record size limits are enforced by the readers.
    """
    with _csv_lock:
        if csv.field_size_limit() < limit:
            csv.field_size_limit(limit)


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """``text`` cut to ``limit`` characters, with a marker when something was cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"... [truncated, {len(text) - limit} more characters]"
