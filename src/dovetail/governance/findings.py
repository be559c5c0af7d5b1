"""``Finding``: one governance rule's verdict on a flow, located like a config error."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

Severity = Literal["error", "warning"]
SEVERITIES: tuple[str, ...] = ("error", "warning", "off")


@dataclass(frozen=True, slots=True)
class Finding:
    """What a rule found, and where.

    A rule gives ``message`` and ``loc`` (a path into the flow file, such as
    ``("sinks", "erp", "http")``); the lint run fills in ``rule``, ``severity`` and the file
    position, so rule functions stay short. A rule may also give ``path``/``line``/``col``
    itself when the finding is in another file (a test case, a mapping sheet).
    """

    message: str
    loc: tuple[Any, ...] = ()
    rule: str = ""
    severity: Severity = "error"
    path: str | None = None
    line: int | None = None
    col: int | None = None

    def __str__(self) -> str:
        where = f"{self.path or '?'}:{self.line or 1}:{self.col or 1}"
        return f"{where}: {self.message} [{self.rule}]"

    def with_rule(self, rule: str, severity: Severity) -> Finding:
        """This finding attributed to ``rule`` at ``severity``."""
        return replace(self, rule=rule, severity=severity)

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` form."""
        return {
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "message": self.message,
            "rule": self.rule,
            "severity": self.severity,
        }
