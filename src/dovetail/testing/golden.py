"""Golden files: a case's whole sink output kept in ``tests/<flow>/<case>.golden.json``.

The file holds ``{"<sink>": [payload, ...], ...}`` as indented JSON with sorted keys, so a
change shows as a small diff in review. A mismatch fails the case with a unified diff
(golden ``-``, actual ``+``). Golden files change only when asked: ``dovetail test --update``
(or ``update=True``) rewrites the files that differ or are missing and names each one.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_DIFF_LINES = 60
"""Longer diffs are cut, with a note of how many lines were left out."""


@dataclass
class GoldenCheck:
    """The verdict on one golden file: failures, and the file written when updating."""

    failures: list[str] = field(default_factory=list)
    updated: Path | None = None


def render(delivered: dict[str, list[Any]]) -> str:
    """The golden text of ``delivered``: indented JSON, keys sorted, a final newline."""
    return _pretty(delivered)


def _pretty(data: Any) -> str:
    # the standard library's json: any integer size, dates and decimals as text (default=str)
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"


def readable_diff(want: str, got: str, label: str) -> str:
    """A unified diff from the golden text to the actual one, cut at ``MAX_DIFF_LINES``."""
    lines = list(
        difflib.unified_diff(
            want.splitlines(),
            got.splitlines(),
            fromfile=f"{label} (golden)",
            tofile=f"{label} (actual)",
            lineterm="",
        )
    )
    if len(lines) > MAX_DIFF_LINES:
        left = len(lines) - MAX_DIFF_LINES
        lines = [*lines[:MAX_DIFF_LINES], f"... {left} more diff lines"]
    return "\n".join(lines)


def check_golden(
    path: Path, delivered: dict[str, list[Any]], *, update: bool, shown: str | None = None
) -> GoldenCheck:
    """Compare ``delivered`` with the golden file at ``path``; with ``update``, rewrite it
    when it differs or is missing (the case then passes this check)."""
    label = shown or path.name
    got = render(delivered)
    want = path.read_text(encoding="utf-8") if path.is_file() else None
    if want is not None and _same(want, got):
        return GoldenCheck()
    if update:
        path.write_text(got, encoding="utf-8")
        return GoldenCheck(updated=path)
    if want is None:
        return GoldenCheck(
            failures=[f"golden file {label} is missing; `dovetail test --update` writes it"]
        )
    return GoldenCheck(
        failures=[
            f"output differs from golden file {label}"
            " (`dovetail test --update` rewrites it):\n"
            + readable_diff(_normalised(want), got, label)
        ]
    )


def _normalised(text: str) -> str:
    """Golden text re-rendered like ours when it is JSON, so a diff shows only changes."""
    try:
        return _pretty(json.loads(text))
    except ValueError:
        return text


def _same(want: str, got: str) -> bool:
    """Equal as JSON (a golden file edited by hand need not be formatted like ours)."""
    try:
        return bool(json.loads(want) == json.loads(got))
    except ValueError:
        return False
