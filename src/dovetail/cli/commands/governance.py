"""``dovetail lint``'s governance part: run the rules, print findings, choose the exit code."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from dovetail.cli import exit_codes
from dovetail.config.loader import Project
from dovetail.config.model import Flow
from dovetail.governance.check import check_flows
from dovetail.governance.findings import Finding
from dovetail.observability.redaction import redact


def governance_findings(project: Project, flows: Sequence[Flow]) -> list[Finding]:
    """Findings of every enabled rule (``ConfigError`` when ``lint:`` settings are wrong)."""
    return check_flows(project, flows)


def print_findings(findings: Sequence[Finding]) -> None:
    """``path:line:col: message [rule-id]``; warnings say so before the message."""
    for finding in findings:
        line = str(finding)
        if finding.severity == "warning":
            where, _, rest = line.partition(": ")
            line = f"{where}: warning: {rest}"
        sys.stdout.write(redact(line) + "\n")
    sys.stdout.flush()


def findings_exit_code(findings: Sequence[Finding]) -> int:
    """2 when any finding is an error; warnings alone pass."""
    return exit_codes.USAGE if any(f.severity == "error" for f in findings) else exit_codes.OK
