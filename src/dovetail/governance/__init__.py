"""Governance rules (policy as code) checked by ``dovetail lint``.

Built-in rules live in ``rules``; projects add their own as plugins (``plugins``). Findings
print as ``path:line:col: message [rule-id]``; errors fail lint, warnings do not.
"""

from dovetail.governance.findings import Finding, Severity
from dovetail.governance.plugins import Rule, lint_rule

__all__ = ["Finding", "Rule", "Severity", "lint_rule"]
