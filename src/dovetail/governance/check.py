"""Run the governance rules over loaded flows: severities from ``dovetail.yaml``, positions
from the flow files, findings sorted like config errors."""

from __future__ import annotations

from collections.abc import Sequence

from dovetail.config.loader import Project
from dovetail.config.model import Flow
from dovetail.config.yaml_positions import Located, load_yaml
from dovetail.errors import ConfigError, Problem
from dovetail.governance.findings import Finding, Severity
from dovetail.governance.plugins import Rule, load_plugin_rules, settings_problem
from dovetail.governance.rules import BUILTIN_RULES


def project_rules(project: Project) -> list[Rule]:
    """Built-in and plugin rules; ``ConfigError`` for unknown or duplicate rule ids."""
    rules = [*BUILTIN_RULES, *load_plugin_rules(project)]
    problems: list[Problem] = []
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            problems.append(
                settings_problem(project, ("lint",), f"lint rule {rule.id!r} is defined twice")
            )
        seen.add(rule.id)
    for rule_id in project.settings.lint.rules:
        if rule_id not in seen:
            known = ", ".join(sorted(seen))
            problems.append(
                settings_problem(
                    project,
                    ("lint", "rules", rule_id),
                    f"unknown lint rule {rule_id!r} (known: {known})",
                )
            )
    if problems:
        raise ConfigError(problems)
    return rules


def check_flows(project: Project, flows: Sequence[Flow]) -> list[Finding]:
    """Every finding of every enabled rule on ``flows``, sorted by file and position.

    A rule that raises is reported as an error finding of that rule (a broken plugin must not
    hide the other rules' findings).
    """
    rules = project_rules(project)
    levels = project.settings.lint.rules
    findings: list[Finding] = []
    for flow in flows:
        located = load_yaml(flow.path, project.display(flow.path))
        for rule in rules:
            level = levels.get(rule.id, rule.default)
            if level == "off":
                continue
            severity: Severity = "error" if level == "error" else "warning"
            try:
                found = list(rule.check(flow, project))
            except Exception as exc:
                found = [Finding(f"the rule failed: {type(exc).__name__}: {exc}", ("flow",))]
                severity = "error"
            findings.extend(_placed(f.with_rule(rule.id, severity), located) for f in found)
    return sorted(
        dict.fromkeys(findings), key=lambda f: (f.path or "", f.line or 0, f.col or 0, f.rule)
    )


def _placed(finding: Finding, located: Located) -> Finding:
    if finding.path is not None and finding.line is not None:
        return finding
    line, col = located.position(finding.loc, key=True)
    return Finding(
        message=finding.message,
        loc=finding.loc,
        rule=finding.rule,
        severity=finding.severity,
        path=finding.path or located.path,
        line=line,
        col=col,
    )
