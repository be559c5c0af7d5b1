"""Markdown building blocks that show any text literally: escaped text, code, tables, fences.

Text from flow files (descriptions, notes, expressions) may contain Markdown or HTML; it is
backslash-escaped so it renders as written, both on a Git host and through ``html.py``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")
_BLOCK_START = re.compile(r"^(?:#+|[+\-=]|\d+[.)])(?=\s|$)|^[-=](?=[-=\s]*$)")


def text(value: object) -> str:
    """``value`` as one line of literal Markdown text (also safe at the start of a line)."""
    flat = _SPECIAL.sub(r"\\\1", " ".join(str(value).split()))
    return _BLOCK_START.sub(lambda m: m.group(0)[:-1] + "\\" + m.group(0)[-1], flat)


def code(value: object, *, cell: bool = False) -> str:
    """``value`` as an inline code span; ``cell``: for a table cell (``|`` escaped)."""
    flat = " ".join(str(value).split())
    if not flat:
        return ""
    if cell:
        flat = flat.replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    padded = f" {flat} " if flat.startswith("`") or flat.endswith("`") or longest else flat
    return f"{fence}{padded}{fence}"


def fence(body: str, info: str = "") -> str:
    """A fenced code block that no line of ``body`` can close early."""
    longest = max((len(run) for run in re.findall(r"^\s*(`{3,})", body, re.M)), default=2)
    marker = "`" * (longest + 1)
    return f"{marker}{info}\n{body.rstrip()}\n{marker}"


def table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GFM table; cells must already be Markdown (``text()`` or ``code()``)."""
    head = "| " + " | ".join(columns) + " |"
    rule = "| " + " | ".join("---" for _ in columns) + " |"
    body = ["| " + " | ".join(cell or " " for cell in row) + " |" for row in rows]
    return "\n".join([head, rule, *body])


def link(label: str, target: str) -> str:
    """A link with literal label text."""
    return f"[{text(label)}]({target.replace(' ', '%20').replace(')', '%29')})"


def duration(seconds: float | None) -> str:
    """``0.2`` -> ``200ms``, ``90`` -> ``1m30s``, ``2592000`` -> ``30d``."""
    if seconds is None:
        return "never"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    whole = int(seconds)
    if whole != seconds or whole < 60:
        return f"{seconds:g}s"
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return "".join(parts)
