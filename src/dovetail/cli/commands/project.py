"""Shared command plumbing: find the project, resolve flow arguments, load flows."""

from __future__ import annotations

from pathlib import Path

from dovetail.config.loader import Project, load_flow, load_project
from dovetail.config.model import Flow
from dovetail.errors import ConfigError, Problem


def flow_paths(project: Project, names: list[str] | None) -> list[Path]:
    """Flow files from arguments (paths, folders or flow names); all flows when none given."""
    if not names:
        return project.flow_paths()
    paths: list[Path] = []
    problems: list[Problem] = []
    for name in names:
        candidate = Path(name)
        if candidate.is_dir():
            paths.extend(sorted([*candidate.glob("*.yaml"), *candidate.glob("*.yml")]))
        elif candidate.is_file():
            paths.append(candidate)
        elif (project.flows_dir / f"{name}.yaml").is_file():
            paths.append(project.flows_dir / f"{name}.yaml")
        else:
            problems.append(Problem(name, 1, 1, "no such flow file or flow name"))
    if problems:
        raise ConfigError(problems)
    return paths


def load_flows(
    project: Project, names: list[str] | None, *, environment: str | None, strict: bool
) -> list[Flow]:
    """Load every selected flow, collecting the problems of all of them."""
    flows: list[Flow] = []
    problems: list[Problem] = []
    for path in flow_paths(project, names):
        try:
            flows.append(load_flow(path, project, environment=environment, strict=strict))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    return flows


def current_project(start: Path | None = None) -> Project:
    return load_project(start)
