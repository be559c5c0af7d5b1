"""Dovetail: declare integration flows in YAML, run them with delivery guarantees.

The public Python API mirrors the command line::

    import dovetail

    flow = dovetail.load_flow("flows/orders-to-erp.yaml")
    summary = dovetail.run_flow(flow, once=True)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dovetail.api import ReplayReport, open_store, replay_async, run_flow, run_flow_async
    from dovetail.config.loader import Project, load_flow, load_project
    from dovetail.config.model import Flow
    from dovetail.config.schema import flow_schema
    from dovetail.core.envelope import Envelope, Failure, SourcePosition
    from dovetail.errors import (
        ConfigError,
        DovetailError,
        PermanentError,
        Problem,
        TransientError,
    )
    from dovetail.runtime.runner import FlowRunner, RunSummary
    from dovetail.testing.harness import run_offline

_HOMES = {
    "dovetail.api": ("ReplayReport", "open_store", "replay_async", "run_flow", "run_flow_async"),
    "dovetail.config.loader": ("Project", "load_flow", "load_project"),
    "dovetail.config.model": ("Flow",),
    "dovetail.config.schema": ("flow_schema",),
    "dovetail.core.envelope": ("Envelope", "Failure", "SourcePosition"),
    "dovetail.errors": (
        "ConfigError",
        "DovetailError",
        "PermanentError",
        "Problem",
        "TransientError",
    ),
    "dovetail.runtime.runner": ("FlowRunner", "RunSummary"),
    "dovetail.testing.harness": ("run_offline",),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use, so ``import dovetail.cli`` stays light."""
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'dovetail' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """Module attributes, the public names included before their first use."""
    return sorted({*globals(), *__all__})


__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DovetailError",
    "Envelope",
    "Failure",
    "Flow",
    "FlowRunner",
    "PermanentError",
    "Problem",
    "Project",
    "ReplayReport",
    "RunSummary",
    "SourcePosition",
    "TransientError",
    "flow_schema",
    "load_flow",
    "load_project",
    "open_store",
    "replay_async",
    "run_flow",
    "run_flow_async",
    "run_offline",
]
