"""Custom governance rules: Python modules of the project and ``dovetail.lint_rules`` plugins.

A rule is a function ``(flow, project) -> list[Finding]``. A module offers its rules either as
a ``RULES`` list or by decorating functions with ``@lint_rule``::

    from dovetail.governance import Finding, lint_rule

    @lint_rule("description-required", default="warning")
    def description_required(flow, project):
        if not flow.spec.description:
            return [Finding("say in one line what the flow does", loc=("flow",))]
        return []

Modules named in ``lint.plugins`` are loaded from the project folder (``my_rules.py`` or a
``my_rules/`` package) or, failing that, from the installed packages. Installed packages can
also register rules under the ``dovetail.lint_rules`` entry point group (a module, a rule or a
list of rules).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from dovetail.config.yaml_positions import load_yaml
from dovetail.errors import ConfigError, Problem
from dovetail.governance.findings import Finding, Severity

if TYPE_CHECKING:
    from dovetail.config.loader import Project
    from dovetail.config.model import Flow

ENTRY_POINT_GROUP = "dovetail.lint_rules"
RULE_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_MARK = "__dovetail_lint_rule__"

RuleFunction = Callable[["Flow", "Project"], Iterable[Finding]]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Rule:
    """A governance rule: its id, default severity and the function that checks a flow."""

    id: str
    check: RuleFunction
    default: Severity = "error"
    summary: str = ""


def lint_rule(
    rule_id: str | None = None, *, default: Severity = "error", summary: str = ""
) -> Callable[[F], F]:
    """Mark a function ``(flow, project) -> list[Finding]`` as a rule with this id and default."""

    def mark(function: F) -> F:
        name = rule_id or _rule_id(function.__name__)
        text = summary or (function.__doc__ or "").strip().split("\n", 1)[0]
        setattr(function, _MARK, Rule(name, function, default, text))
        return function

    return mark


def rules_of(value: Any, origin: str) -> list[Rule]:
    """The rules a module, a rule, a function or a list of them offers."""
    if isinstance(value, Rule):
        return [value]
    if isinstance(value, ModuleType):
        listed = getattr(value, "RULES", None)
        if listed is not None:
            return [rule for item in listed for rule in rules_of(item, origin)]
        marked = [getattr(v, _MARK) for v in vars(value).values() if hasattr(v, _MARK)]
        return sorted(marked, key=lambda rule: rule.id)
    if isinstance(value, list | tuple):
        return [rule for item in value for rule in rules_of(item, origin)]
    if callable(value):
        marked_rule = getattr(value, _MARK, None)
        if isinstance(marked_rule, Rule):
            return [marked_rule]
        name = getattr(value, "__name__", type(value).__name__)
        return [Rule(_rule_id(name), value)]
    raise TypeError(f"{origin}: {value!r} is not a lint rule, a list of rules or a module")


def load_plugin_rules(project: Project) -> list[Rule]:
    """Rules of the modules in ``lint.plugins`` and of ``dovetail.lint_rules`` entry points.

    Raises ``ConfigError`` (pointing at ``dovetail.yaml``) when a module cannot be loaded.
    """
    rules: list[Rule] = []
    problems: list[Problem] = []
    for index, name in enumerate(project.settings.lint.plugins):
        try:
            rules.extend(rules_of(_import(project.root, name), name))
        except Exception as exc:  # a user's module can fail in any way; report, don't crash
            problems.append(
                settings_problem(
                    project,
                    ("lint", "plugins", index),
                    f"lint plugin {name!r} cannot be loaded: {_short(exc)}",
                )
            )
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            rules.extend(rules_of(entry.load(), entry.name))
        except Exception as exc:
            problems.append(
                settings_problem(
                    project,
                    ("lint",),
                    f"lint rule entry point {entry.name!r} cannot be loaded: {_short(exc)}",
                )
            )
    problems.extend(
        settings_problem(project, ("lint",), f"lint rule id {rule.id!r} is not kebab-case")
        for rule in rules
        if not RULE_ID.match(rule.id)
    )
    if problems:
        raise ConfigError(problems)
    return rules


def settings_problem(project: Project, loc: tuple[Any, ...], message: str) -> Problem:
    """A problem located in the project's ``dovetail.yaml`` (its start when absent)."""
    from dovetail.config.loader import PROJECT_FILE

    path = project.root / PROJECT_FILE
    if not path.is_file():
        return Problem(PROJECT_FILE, 1, 1, message)
    return load_yaml(path, PROJECT_FILE).problem(loc, message, key=True)


def _import(root: Path, name: str) -> ModuleType:
    """``name`` from the project folder (fresh each time), else from the installed packages."""
    relative = Path(*name.split("."))
    for candidate in (root / relative.with_suffix(".py"), root / relative / "__init__.py"):
        if candidate.is_file():
            spec = importlib.util.spec_from_file_location(f"dovetail_lint_plugin.{name}", candidate)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    return importlib.import_module(name)


def _rule_id(function_name: str) -> str:
    return function_name.strip("_").replace("_", "-").lower()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
