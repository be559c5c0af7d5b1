"""Variables and secrets a flow needs, and whether each environment file defines them.

``${var:NAME}`` is defined by an environment file's ``vars:``. ``${env:NAME}`` and
``${secret:NAME}`` are supplied on the machine that runs the flow (environment variables,
secret files, a secrets manager), so per environment the docs say whether the reference is
used there (an environment's ``flows:`` override may replace the value holding it) and
whether it has a fallback. Secret values are never read; variable values are shown unless
their name or value looks like a credential.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from dovetail.config.interpolate import REFERENCE
from dovetail.projectdocs.model import ReferenceDoc, ReferenceUse, RefKind

SECRET_NAME = re.compile(
    r"pass(word|wd|phrase)?|pwd|secret|token|api[_-]?key|private|credential|auth|signature",
    re.IGNORECASE,
)
SECRET_VALUE = re.compile(r"^[A-Za-z0-9+/=_\-]{24,}$")


@dataclass(frozen=True, slots=True)
class EnvironmentView:
    """One environment file as the docs need it: its vars and this flow's override."""

    name: str
    variables: Mapping[str, Any]
    override: Mapping[str, Any] | None


def looks_secret(name: str, value: object) -> bool:
    """Whether a variable should be hidden: a credential-like name or a key-like value."""
    text = str(value)
    return bool(SECRET_NAME.search(name)) or bool(
        SECRET_VALUE.match(text) and re.search(r"\d", text) and re.search(r"[A-Za-z]", text)
    )


def scan(data: Any) -> list[tuple[RefKind, str, str | None, str]]:
    """Every reference in ``data`` as ``(kind, name, fallback, dotted location)``."""
    found: list[tuple[RefKind, str, str | None, str]] = []

    def walk(node: Any, loc: tuple[str, ...]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, (*loc, str(key)))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, (*loc, f"[{index}]"))
        elif isinstance(node, str):
            for match in REFERENCE.finditer(node):
                kind = cast(RefKind, match.group(1))  # the regex allows only these three
                found.append((kind, match.group(2), match.group(3), _dotted(loc)))

    walk(data, ())
    return found


def _dotted(loc: tuple[str, ...]) -> str:
    return "".join(part if part.startswith("[") else f".{part}" for part in loc).lstrip(".")


def deep_merge(base: Any, override: Any) -> Any:
    """``override`` layered over ``base`` the way ``--env`` layers environment files."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = deep_merge(base[key], value) if key in base else value
        return merged
    return override


def collect_references(
    raw: Mapping[str, Any], environments: list[EnvironmentView]
) -> list[ReferenceDoc]:
    """The references of a flow (as written, plus those its environment overrides add)."""
    per_env = {
        env.name: {
            (kind, name)
            for kind, name, _, _ in scan(deep_merge(dict(raw), dict(env.override or {})))
        }
        for env in environments
    }
    merged: dict[tuple[RefKind, str], tuple[list[str], str | None]] = {}
    sources: list[Any] = [raw, *(env.override for env in environments if env.override)]
    for data in sources:
        for kind, name, fallback, loc in scan(data):
            places, known_fallback = merged.setdefault((kind, name), ([], fallback))
            if loc not in places:
                places.append(loc)
            if known_fallback is None and fallback is not None:
                merged[(kind, name)] = (places, fallback)
    docs: list[ReferenceDoc] = []
    for (kind, name), (places, fallback) in merged.items():
        uses = tuple(
            _use(kind, name, fallback, env, (kind, name) in per_env[env.name])
            for env in environments
        )
        docs.append(
            ReferenceDoc(
                kind=kind,
                name=name,
                used_at=tuple(places),
                fallback=None if kind == "secret" else fallback,
                per_environment=uses,
            )
        )
    order = {"secret": 0, "env": 1, "var": 2}
    return sorted(docs, key=lambda d: (order[d.kind], d.name))


def _use(
    kind: RefKind, name: str, fallback: str | None, env: EnvironmentView, used: bool
) -> ReferenceUse:
    if not used:
        return ReferenceUse(env.name, "not used")
    if kind == "var":
        if name in env.variables:
            value = env.variables[name]
            shown = None if looks_secret(name, value) else str(value)
            return ReferenceUse(env.name, "defined", shown)
        return ReferenceUse(env.name, "default" if fallback is not None else "missing")
    return ReferenceUse(env.name, "at run time" if fallback is None else "default")
