"""``${env:NAME}``, ``${secret:NAME}`` and ``${var:NAME}`` references in config values.

- ``env``: the process environment.
- ``secret``: the environment, then each secret-files folder (``<folder>/<NAME>``, the
  container convention), then the providers of ``dovetail.yaml`` (HashiCorp Vault; only in
  strict mode); values are registered for redaction (in every encoded form) and never
  printed, a value of 1 to 3 characters is a problem (it could not be redacted), and
  ``dovetail.config.secrets.refresh_secret(NAME)`` reads one again where it was found.
- ``var``: the ``vars:`` of the selected ``environments/<env>.yaml``.

``${kind:NAME:-fallback}`` gives a fallback used when NAME is not defined. In lenient mode
(lint without ``--env``, ``test``, ``docs``) unresolved ``env``/``secret`` references are kept
as written; ``var`` references are always checked.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from dovetail.config.secrets import SecretError, SecretProvider, remember_origin
from dovetail.observability.redaction import MIN_SECRET_LENGTH, register_secret

REFERENCE = re.compile(r"\$\{(env|secret|var):([A-Za-z_][A-Za-z0-9_.\-]*)(?::-([^}]*))?\}")


@dataclass
class Resolver:
    """Where references are looked up."""

    variables: Mapping[str, Any] = field(default_factory=dict)
    environment_name: str | None = None
    secret_dirs: list[Path] = field(default_factory=list)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    strict: bool = True
    providers: list[SecretProvider] = field(default_factory=list)
    """Read for ``secret`` references after the environment and the secret files."""

    def lookup(self, kind: str, name: str) -> tuple[str | None, list[str]]:
        """The value of a reference, or ``None`` and the places that were looked in."""
        looked: list[str] = []
        if kind == "var":
            where = (
                f"environments/{self.environment_name}.yaml vars"
                if self.environment_name
                else "environment files (no --env selected)"
            )
            looked.append(where)
            if name in self.variables:
                return str(self.variables[name]), looked
            return None, looked
        looked.append(f"environment variable {name}")
        if name in self.environ:
            value = self.environ[name]
            if kind == "secret":
                register_secret(value)
                remember_origin(name, partial(self.environ.get, name), value)
            return value, looked
        if kind == "secret":
            for folder in self.secret_dirs:
                candidate = folder / name
                looked.append(f"secret file {candidate}")
                if candidate.is_file():
                    secret = candidate.read_text(encoding="utf-8").strip()
                    register_secret(secret)
                    remember_origin(name, partial(_read_file, candidate), secret)
                    return secret, looked
            for provider in self.providers:
                looked.append(provider.describe(name))
                try:
                    found = provider.read(name)
                except SecretError as exc:
                    looked[-1] = f"{exc} (key {name})"
                    continue
                if found is not None:
                    register_secret(found)
                    remember_origin(name, partial(provider.read, name, fresh=True), found)
                    return found, looked
        return None, looked


def _read_file(path: Path) -> str | None:
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None


def interpolate(data: Any, resolver: Resolver) -> tuple[Any, list[tuple[tuple[Any, ...], str]]]:
    """Resolve references in every string of ``data``; return new data and located problems."""
    problems: list[tuple[tuple[Any, ...], str]] = []

    def walk(node: Any, loc: tuple[Any, ...]) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, (*loc, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, (*loc, i)) for i, v in enumerate(node)]
        if isinstance(node, str) and "${" in node:
            return substitute(node, loc)
        return node

    def substitute(text: str, loc: tuple[Any, ...]) -> str:
        def replace(match: re.Match[str]) -> str:
            kind, name, fallback = match.group(1), match.group(2), match.group(3)
            value, looked = resolver.lookup(kind, name)
            if value is not None:
                if kind == "secret" and 0 < len(value) < MIN_SECRET_LENGTH:
                    problems.append((loc, too_short(name, value)))
                return value
            if fallback is not None:
                return fallback
            if kind == "var" or resolver.strict:
                problems.append((loc, f"undefined {kind} {name!r}; looked in: {', '.join(looked)}"))
            return match.group(0)

        return REFERENCE.sub(replace, text)

    return walk(data, ()), problems


def too_short(name: str, value: str) -> str:
    """The problem of a secret too short to be redacted from output (its name, never its
    value)."""
    return (
        f"secret {name!r} is {len(value)} character(s) long; a secret must have at least"
        f" {MIN_SECRET_LENGTH} characters so it can be redacted from logs and dead letters"
        " (an empty value is allowed)"
    )


def references(data: Any) -> list[tuple[str, str]]:
    """Every ``(kind, name)`` referenced in ``data``, in order of appearance (for docs)."""
    found: list[tuple[str, str]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, str):
            for match in REFERENCE.finditer(node):
                pair = (match.group(1), match.group(2))
                if pair not in found:
                    found.append(pair)

    walk(data)
    return found
