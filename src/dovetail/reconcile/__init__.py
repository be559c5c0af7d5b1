"""Reconciliation: compare a source and a target record by record, by key.

::

    from dovetail.reconcile import run_reconciliation

    report = run_reconciliation("reconcile/orders.yaml")
    print(report.accuracy, report.missing_in_target, report.passed)

``run_reconciliation`` blocks; async code awaits ``reconcile_async``. See docs/reconcile.md.
"""

from __future__ import annotations

from dovetail.reconcile.config import (
    FieldRule,
    ReconcileConfig,
    SideConfig,
    load_reconciliation,
    validate_reconciliation,
)
from dovetail.reconcile.render import render, write_report
from dovetail.reconcile.report import ReconcileReport
from dovetail.reconcile.run import reconcile_async, run_reconciliation

__all__ = [
    "FieldRule",
    "ReconcileConfig",
    "ReconcileReport",
    "SideConfig",
    "load_reconciliation",
    "reconcile_async",
    "render",
    "run_reconciliation",
    "validate_reconciliation",
    "write_report",
]
