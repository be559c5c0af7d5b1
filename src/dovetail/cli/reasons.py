"""Group dead-letter reasons by kind for the end-of-run summary.

A file with thousands of malformed rows produces thousands of reasons that differ only in
where the row was (``line 17: expected 4 fields, found 5``). The summary shows one line per
kind — the reason with its position taken out — with the count and the first few positions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

FIRST_POSITIONS = 5
"""How many positions a grouped reason lists before the ellipsis."""

_LEADING = re.compile(r"^(?P<word>line|row|record|element|item) (?P<at>\d+): ")
"""A position the reason starts with: ``line 17: ...``."""
_INNER = re.compile(r"(?::\s*)?\bline \d+ column \d+(?: \(char \d+\))?")
"""A parser's own position inside a reason (``...: line 1 column 5 (char 4)``)."""

_PLURAL = {"line": "lines", "row": "rows", "record": "records", "element": "elements"}


@dataclass
class ReasonGroup:
    """Dead letters of one kind: the reason without positions, how many, where."""

    reason: str
    count: int = 0
    word: str | None = None
    """What the positions count (``line``, ``record``...); None when the reasons had none."""
    positions: set[int] = field(default_factory=set)

    def where(self, shown: int = FIRST_POSITIONS) -> str:
        """``lines 17, 92, 144, …`` — the first ``shown`` positions; empty when there are none."""
        if self.word is None or not self.positions:
            return ""
        ordered = sorted(self.positions)
        text = ", ".join(str(at) for at in ordered[:shown])
        if len(ordered) > shown:
            text += ", …"
        word = self.word if len(ordered) == 1 else _PLURAL.get(self.word, self.word + "s")
        return f"{word} {text}"


def reason_kind(reason: str) -> tuple[str, str | None, int | None]:
    """The reason without its position, and the position (word and number) if it had one."""
    match = _LEADING.match(reason)
    word, at = (match["word"], int(match["at"])) if match else (None, None)
    kind = reason[match.end() :] if match else reason
    return _INNER.sub("", kind).strip(), word, at


def group_reasons(reasons: Mapping[str, int] | Iterable[tuple[str, int]]) -> list[ReasonGroup]:
    """Reasons grouped by kind, largest group first (ties in order of first appearance)."""
    pairs = reasons.items() if isinstance(reasons, Mapping) else reasons
    groups: dict[str, ReasonGroup] = {}
    for reason, count in pairs:
        kind, word, at = reason_kind(reason)
        group = groups.setdefault(kind, ReasonGroup(kind))
        group.count += count
        if at is not None:
            group.word = group.word or word
            group.positions.add(at)
    return sorted(groups.values(), key=lambda group: -group.count)
