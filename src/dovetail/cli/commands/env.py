"""``dovetail env diff A B``: what changes between two environments, for release notes.

Lists the ``vars`` added, removed and changed between ``environments/A.yaml`` and
``environments/B.yaml``, and per flow every resolved setting (the flow with each environment
layered over it) that differs. Values that look like secrets are shown as ``***``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import typer

from dovetail.cli import exit_codes
from dovetail.cli.commands.project import current_project
from dovetail.cli.render import console, print_json, print_problems
from dovetail.config.loader import Project, load_environment, load_flow
from dovetail.config.model import Flow
from dovetail.errors import ConfigError, Problem
from dovetail.governance.rules import is_secret_key, url_has_password
from dovetail.observability.redaction import redact

env_app = typer.Typer(help="Compare environments.", no_args_is_help=True)
HIDDEN = "***"
UNSET = None


@dataclass
class EnvironmentDiff:
    """Deltas from environment ``old`` to ``new``."""

    old: str
    new: str
    added: dict[str, Any] = field(default_factory=dict)
    removed: dict[str, Any] = field(default_factory=dict)
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    flows: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` form."""
        return {
            "from": self.old,
            "to": self.new,
            "variables": {
                "added": self.added,
                "removed": self.removed,
                "changed": {k: {"from": a, "to": b} for k, (a, b) in self.changed.items()},
            },
            "flows": {
                name: {k: {"from": a, "to": b} for k, (a, b) in settings.items()}
                for name, settings in self.flows.items()
            },
        }


def diff_environments(project: Project, old: str, new: str) -> EnvironmentDiff:
    """Compare two environments of ``project``; ``ConfigError`` when one cannot be loaded."""
    before, after = load_environment(project, old), load_environment(project, new)
    result = EnvironmentDiff(old, new)
    for name in sorted(set(before.vars) | set(after.vars)):
        a, b = before.vars.get(name), after.vars.get(name)
        if name not in before.vars:
            result.added[name] = _shown(name, b)
        elif name not in after.vars:
            result.removed[name] = _shown(name, a)
        elif a != b:
            result.changed[name] = (_shown(name, a), _shown(name, b))
    problems: list[Problem] = []
    for path in project.flow_paths():
        try:
            left = load_flow(path, project, environment=old, strict=False)
            right = load_flow(path, project, environment=new, strict=False)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        a_settings, b_settings = resolved_settings(left), resolved_settings(right)
        deltas = {
            key: (_shown(key, a_settings.get(key)), _shown(key, b_settings.get(key)))
            for key in sorted(set(a_settings) | set(b_settings))
            if a_settings.get(key) != b_settings.get(key)
        }
        if deltas:
            result.flows[left.name] = deltas
    if problems:
        raise ConfigError(problems)
    return result


def resolved_settings(flow: Flow) -> dict[str, Any]:
    """Every setting of ``flow`` as resolved for its environment, by dotted key."""
    spec = flow.spec.model_dump(mode="json", exclude={"source", "steps", "sink", "sinks"})
    data: dict[str, Any] = {**spec, "source": {}, "steps": [], "sinks": {}}
    data["source"][flow.source.spec.name] = _dump(flow.source.config)
    data["steps"] = [{ref.spec.name: _dump(ref.config)} for ref in flow.steps]
    for name, ref in flow.sinks.items():
        data["sinks"][name] = {ref.spec.name: _dump(ref.config)}
    flat: dict[str, Any] = {}
    _flatten(data, "", flat)
    return flat


def _dump(config: Any) -> Any:
    dump = getattr(config, "model_dump", None)
    return dump(mode="json", by_alias=True) if callable(dump) else config


def _flatten(node: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            _flatten(value, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(node, list) and node and any(isinstance(v, dict | list) for v in node):
        for index, value in enumerate(node):
            _flatten(value, f"{prefix}[{index}]", out)
    else:
        out[prefix] = node


def _shown(key: str, value: Any) -> Any:
    last = key.rsplit(".", 1)[-1]
    if value is None:
        return UNSET
    if is_secret_key(last) or (isinstance(value, str) and url_has_password(value)):
        return HIDDEN
    if isinstance(value, str):
        return redact(value)
    return value


@env_app.command("diff")
def env_diff(
    old: Annotated[str, typer.Argument(help="Environment compared from (e.g. test).")],
    new: Annotated[str, typer.Argument(help="Environment compared to (e.g. prod).")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Configuration deltas between two environments: variables and resolved flow settings."""
    project = current_project()
    try:
        result = diff_environments(project, old, new)
    except ConfigError as exc:
        print_problems(exc.problems)
        raise typer.Exit(exit_codes.USAGE) from None
    if as_json:
        print_json(result.as_dict())
    else:
        console.print(render_markdown(result), markup=False)


def render_markdown(result: EnvironmentDiff) -> str:
    """The deltas as Markdown for release notes."""
    a, b = result.old, result.new
    lines = [f"## Configuration changes: {a} -> {b}", "", "### Variables", ""]
    rows = [
        *[(k, "added", UNSET, v) for k, v in result.added.items()],
        *[(k, "removed", v, UNSET) for k, v in result.removed.items()],
        *[(k, "changed", x, y) for k, (x, y) in result.changed.items()],
    ]
    if rows:
        lines += [f"| variable | change | {a} | {b} |", "| --- | --- | --- | --- |"]
        lines += [f"| {k} | {c} | {_cell(x)} | {_cell(y)} |" for k, c, x, y in sorted(rows)]
    else:
        lines.append("No differences.")
    for name, settings in sorted(result.flows.items()):
        lines += ["", f"### Flow {name}", "", f"| setting | {a} | {b} |", "| --- | --- | --- |"]
        lines += [f"| {k} | {_cell(x)} | {_cell(y)} |" for k, (x, y) in settings.items()]
    if not result.flows:
        lines += ["", "No flow settings differ."]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is UNSET:
        return "(unset)"
    return f"`{value}`".replace("|", "\\|")
