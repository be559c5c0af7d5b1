"""Load a project and its flows: YAML with positions -> interpolation -> models -> components.

Every problem found is collected and raised together as one ``ConfigError`` whose lines read
``path:line:col: message``.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from dovetail.config.interpolate import Resolver, interpolate
from dovetail.config.model import (
    ComponentRef,
    EnvironmentFile,
    Flow,
    FlowFile,
    ProjectSettings,
)
from dovetail.config.secrets import providers_for
from dovetail.config.yaml_positions import Located, load_yaml
from dovetail.errors import ConfigError, Problem
from dovetail.observability.redaction import redact
from dovetail.plugins.registry import Registry, default_registry, missing_modules
from dovetail.plugins.spec import Kind

PROJECT_FILE = "dovetail.yaml"
NESTED_POSITION = re.compile(r"^([^\s:]+):(\d+):(\d+): (.*)$")


@dataclass
class Project:
    """A user's integration project: its folder and ``dovetail.yaml`` settings."""

    root: Path
    settings: ProjectSettings

    @property
    def flows_dir(self) -> Path:
        return self.root / self.settings.flows

    def flow_paths(self) -> list[Path]:
        """Every flow file of the project, sorted."""
        folder = self.flows_dir
        if not folder.is_dir():
            return []
        return sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])

    def store_url(self) -> str:
        """The store URL: ``DOVETAIL_STORE``, then ``store:``, then SQLite in ``.dovetail/``."""
        url = os.environ.get("DOVETAIL_STORE") or self.settings.store
        if url is None:
            return f"sqlite:///{self.root / '.dovetail' / 'state.db'}"
        if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).is_absolute():
            return f"sqlite:///{self.root / url[len('sqlite:///') :]}"
        return url

    def display(self, path: Path) -> str:
        """``path`` relative to the project root when inside it."""
        try:
            return str(path.resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(path)


def find_project_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` holding ``dovetail.yaml`` (else ``start``)."""
    start = start.resolve()
    here = start if start.is_dir() else start.parent
    for folder in (here, *here.parents):
        if (folder / PROJECT_FILE).is_file():
            return folder
    return here


def load_project(start: Path | None = None) -> Project:
    """Load ``dovetail.yaml`` from the project containing ``start`` (default: the cwd)."""
    root = find_project_root(start or Path.cwd())
    settings_path = root / PROJECT_FILE
    if not settings_path.is_file():
        return Project(root=root, settings=ProjectSettings())
    located = load_yaml(settings_path, PROJECT_FILE)
    data = located.data if located.data is not None else {}
    try:
        settings = ProjectSettings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_problems_from(exc, located, (), ProjectSettings)) from None
    return Project(root=root, settings=settings)


def load_environment(project: Project, name: str) -> EnvironmentFile:
    """Load ``environments/<name>.yaml``; a missing file is a configuration error."""
    path = project.root / project.settings.environments / f"{name}.yaml"
    shown = project.display(path)
    if not path.is_file():
        available = sorted(p.stem for p in path.parent.glob("*.yaml"))
        hint = f" (available: {', '.join(available)})" if available else ""
        raise ConfigError([Problem(shown, 1, 1, f"environment {name!r} not found{hint}")])
    located = load_yaml(path, shown)
    try:
        return EnvironmentFile.model_validate(located.data or {})
    except ValidationError as exc:
        raise ConfigError(_problems_from(exc, located, (), EnvironmentFile)) from None


def _deep_merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _deep_merge(base.get(key), value) if key in base else value
        return merged
    return override


def load_flow(
    path: Path | str,
    project: Project | None = None,
    *,
    environment: str | None = None,
    strict: bool = True,
    registry: Registry | None = None,
) -> Flow:
    """Load and validate one flow file; raises ``ConfigError`` listing every problem.

    ``strict`` resolves ``${env:}`` and ``${secret:}`` (run); lenient mode keeps unresolved
    ones as written (lint without ``--env``, test, docs).
    """
    path = Path(path)
    project = project or load_project(path)
    registry = registry or default_registry()
    located = load_yaml(path, project.display(path))
    problems: list[Problem] = []
    raw = located.data
    if not isinstance(raw, dict):
        raise ConfigError([located.problem((), "a flow file must be a mapping")])

    variables: dict[str, Any] = {}
    if environment is not None:
        env_file = load_environment(project, environment)
        variables = dict(env_file.vars)
        override = env_file.flows.get(str(raw.get("flow", "")))
        if override:
            raw = _deep_merge(raw, override)
    secret_dirs = [project.root / d for d in project.settings.secrets.files]
    resolver = Resolver(
        variables=variables,
        environment_name=environment,
        secret_dirs=secret_dirs,
        strict=strict,
        providers=providers_for(project.root, project.settings.secrets) if strict else [],
    )
    if environment is None and not strict:
        resolver.variables = _all_environment_vars(project)
    data, missing = interpolate(raw, resolver)
    problems.extend(located.problem(loc, message) for loc, message in missing)

    spec: FlowFile | None = None
    try:
        spec = FlowFile.model_validate(data)
    except ValidationError as exc:
        problems.extend(_problems_from(exc, located, (), FlowFile, registry=registry))

    # components are checked even when the top level is wrong, so every problem shows at once
    context = {"project_dir": project.root}
    source = None
    if "source" in data:
        source = _component(
            registry, "source", data["source"], ("source",), located, context, problems
        )
    steps: list[ComponentRef | None] = []
    raw_steps = data.get("steps")
    for index, item in enumerate(raw_steps if isinstance(raw_steps, list) else []):
        steps.append(
            _component(registry, "step", item, ("steps", index), located, context, problems)
        )
    sinks: dict[str, ComponentRef | None] = {}
    if data.get("sink") is not None:
        sinks["sink"] = _component(
            registry, "sink", data["sink"], ("sink",), located, context, problems
        )
    raw_sinks = data.get("sinks")
    for name, item in (raw_sinks if isinstance(raw_sinks, dict) else {}).items():
        sinks[name] = _component(
            registry, "sink", item, ("sinks", name), located, context, problems, label=name
        )
    for ref in steps:
        targets = getattr(ref.config, "targets", None) if ref is not None else None
        if ref is not None and callable(targets):
            for target in sorted(targets()):
                if target not in sinks:
                    known = ", ".join(sorted(sinks))
                    problems.append(
                        located.problem(
                            ref.loc,
                            f"route target {target!r} is not a declared sink (declared: {known})",
                        )
                    )
    if problems or source is None or spec is None:
        raise ConfigError(_dedupe(problems))
    return Flow(
        spec=spec,
        path=path,
        project_dir=project.root,
        source=source,
        steps=[s for s in steps if s is not None],
        sinks={k: v for k, v in sinks.items() if v is not None},
        environment=environment,
        raw=raw,
    )


def _all_environment_vars(project: Project) -> dict[str, Any]:
    """Without ``--env``, a ``${var:}`` must be defined in some environment file."""
    merged: dict[str, Any] = {}
    folder = project.root / project.settings.environments
    for env_path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        try:
            merged.update(load_environment(project, env_path.stem).vars)
        except ConfigError:
            continue
    return merged


def _component(
    registry: Registry,
    kind: Kind,
    item: Any,
    loc: tuple[Any, ...],
    located: Located,
    context: dict[str, Any],
    problems: list[Problem],
    *,
    label: str | None = None,
) -> ComponentRef | None:
    if not isinstance(item, dict) or len(item) != 1:
        names = ", ".join(registry.names(kind))
        problems.append(
            located.problem(
                loc, f"a {kind} is a mapping with exactly one key, the {kind} name ({names})"
            )
        )
        return None
    ((name, raw),) = item.items()
    spec = registry.get(kind, name)
    if spec is None:
        hint = registry.suggest(kind, name)
        did_you_mean = f" (did you mean {hint!r}?)" if hint else ""
        problems.append(
            located.problem(
                (*loc, name),
                f"unknown {kind} {name!r}{did_you_mean}; known: {', '.join(registry.names(kind))}",
                key=True,
            )
        )
        return None
    missing = missing_modules(spec)
    if missing:
        problems.append(
            located.problem(
                (*loc, name),
                f"{kind} {name!r} needs the '{spec.extra}' extra ({', '.join(missing)} not"
                f" installed): pip install 'dovetail[{spec.extra}]'",
                key=True,
            )
        )
        return None
    config_loc = (*loc, name)
    if raw is None:
        raw = {}
    shorthand_loc: tuple[Any, ...] | None = None
    if not isinstance(raw, dict):
        if spec.shorthand is None:
            problems.append(
                located.problem(config_loc, f"{kind} {name!r} expects a mapping of options")
            )
            return None
        raw = {spec.shorthand: raw}
        shorthand_loc = config_loc
    try:
        config = spec.config.model_validate(raw, context=context)
    except ValidationError as exc:
        found = _problems_from(exc, located, config_loc, spec.config, shorthand=shorthand_loc)
        problems.extend(found)
        return None
    if label is None:
        label = name if kind != "step" else f"{name}"
    return ComponentRef(kind=kind, spec=spec, config=config, label=label, loc=config_loc)


def _problems_from(
    exc: ValidationError,
    located: Located,
    prefix: tuple[Any, ...],
    model: type[BaseModel],
    *,
    shorthand: tuple[Any, ...] | None = None,
    registry: Registry | None = None,
) -> list[Problem]:
    problems: list[Problem] = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        where = shorthand if shorthand is not None else (*prefix, *loc)
        dotted = ".".join(str(p) for p in (*prefix, *loc))
        kind = error["type"]
        if kind == "extra_forbidden":
            key = str(loc[-1])
            allowed = _allowed_keys(model, loc[:-1])
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = f"; allowed: {', '.join(sorted(allowed))}" if allowed else ""
            problems.append(located.problem(where, f"unknown key {key!r}{hint}{known}", key=True))
        elif kind == "missing":
            problems.append(
                located.problem(
                    where[:-1] if shorthand is None else where,
                    f"missing required key {dotted!r}",
                    key=True,
                )
            )
        else:
            message = str(error["msg"])
            if message.startswith("Value error, "):
                message = message[len("Value error, ") :]
            nested = [NESTED_POSITION.match(part) for part in message.splitlines()]
            if nested and all(nested):  # a referenced file (sheet, schema) located its problems
                line, col = located.position(where)
                for match in nested:
                    assert match is not None
                    problems.append(
                        Problem(
                            match.group(1),
                            int(match.group(2)),
                            int(match.group(3)),
                            f"{match.group(4)} (used at {located.path}:{line}:{col})",
                        )
                    )
                continue
            found = error.get("input")
            shown = ""
            if isinstance(found, str | int | float | bool) and kind not in {"value_error"}:
                shown = f" (found {redact(repr(found))[:80]})"
            problems.append(located.problem(where, f"{dotted}: {message}{shown}"))
    return problems


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = next(
                (f for n, f in current.model_fields.items() if (f.alias or n) == str(part)), None
            )
            if info is None:
                return []
            current = info.annotation
        else:
            continue
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [info.alias or name for name, info in current.model_fields.items()]
    return []


def _unwrap(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    if origin in (list, dict):
        args = typing.get_args(annotation)
        return args[-1] if args else annotation
    return annotation


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[Problem] = set()
    unique = []
    for problem in problems:
        if problem not in seen:
            seen.add(problem)
            unique.append(problem)
    return sorted(unique, key=lambda p: (p.path, p.line, p.col))
