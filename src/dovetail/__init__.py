"""Dovetail: declare integration flows in YAML, run them with delivery guarantees.

The public Python API mirrors the command line::

    import dovetail

    flow = dovetail.load_flow("flows/orders-to-erp.yaml")
    summary = dovetail.run_flow(flow, once=True)
"""

from __future__ import annotations

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
