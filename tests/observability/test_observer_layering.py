"""The observer protocol depends on the core's result types, never on ``delivery/``."""

from __future__ import annotations

import ast
from pathlib import Path

import dovetail.observability.events as events


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_observer_protocol_imports_nothing_from_the_delivery_package() -> None:
    imported = _imported_modules(Path(events.__file__))
    assert "dovetail.core.delivery" in imported
    assert not {m for m in imported if m.startswith("dovetail.delivery")}


def test_sink_delivery_reports_the_core_result_type() -> None:
    from dovetail.core.delivery import DeliveryResult, Parked
    from dovetail.delivery import parking, sink_delivery

    assert events.DeliveryResult is DeliveryResult
    assert sink_delivery.DeliveryResult is DeliveryResult
    assert parking.Parked is Parked
