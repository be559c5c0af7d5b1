"""Helpers for reconciliation tests: write sides as files, run a reconciliation."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import orjson

from dovetail.reconcile import ReconcileReport, run_reconciliation, validate_reconciliation


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


def reconcile(root: Path, **config: Any) -> ReconcileReport:
    """Validate ``config`` against ``root`` and run it."""
    from dovetail.config.loader import load_project

    loaded = validate_reconciliation(config, root)
    return run_reconciliation(loaded, project=load_project(root))
