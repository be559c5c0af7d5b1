"""Registry of components by kind and name; built-ins plus the ``dovetail.components`` entry point.

A third-party package registers components with an entry point whose value is a module (or a
callable returning specs) that defines ``SPEC`` or ``SPECS``::

    [project.entry-points."dovetail.components"]
    my_erp = "my_package.erp_sink"
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
from collections.abc import Iterable
from functools import lru_cache
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

from dovetail.plugins.builtin import BUILTIN_MODULES
from dovetail.plugins.spec import ComponentSpec, Kind

ENTRY_POINT_GROUP = "dovetail.components"


class Registry:
    """Components by kind and name."""

    def __init__(self) -> None:
        self._specs: dict[Kind, dict[str, ComponentSpec]] = {"source": {}, "step": {}, "sink": {}}

    def register(self, spec: ComponentSpec) -> None:
        """Add ``spec``; a second component of the same kind and name is an error."""
        existing = self._specs[spec.kind]
        if spec.name in existing:
            raise ValueError(f"{spec.kind} {spec.name!r} is registered twice")
        existing[spec.name] = spec

    def get(self, kind: Kind, name: str) -> ComponentSpec | None:
        return self._specs[kind].get(name)

    def names(self, kind: Kind) -> list[str]:
        return sorted(self._specs[kind])

    def all(self, kind: Kind) -> list[ComponentSpec]:
        return [self._specs[kind][n] for n in self.names(kind)]

    def suggest(self, kind: Kind, name: str) -> str | None:
        """The closest registered name, for a "did you mean" hint."""
        close = difflib.get_close_matches(name, self.names(kind), n=1, cutoff=0.6)
        return close[0] if close else None


def specs_of(module: ModuleType | Any) -> Iterable[ComponentSpec]:
    """The specs a module or entry-point object provides."""
    if callable(module) and not isinstance(module, ModuleType):
        module = module()
        if isinstance(module, ComponentSpec):
            return [module]
        if isinstance(module, list):
            return module
    found: list[ComponentSpec] = []
    if hasattr(module, "SPEC"):
        found.append(module.SPEC)
    found.extend(getattr(module, "SPECS", []))
    return found


def missing_modules(spec: ComponentSpec) -> list[str]:
    """Import names of ``spec.modules`` that are not installed."""
    return [m for m in spec.modules if importlib.util.find_spec(m) is None]


@lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The process-wide registry: built-ins first, then installed plugins."""
    registry = Registry()
    for module_name in BUILTIN_MODULES:
        for spec in specs_of(importlib.import_module(module_name)):
            registry.register(spec)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        for spec in specs_of(entry.load()):
            registry.register(spec)
    return registry
