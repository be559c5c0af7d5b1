"""A small project shared by the observability tests: a file source, a schema check, a filter
and two file sinks, so that every outcome (delivered, filtered, dead-lettered) happens."""

from __future__ import annotations

import json
from pathlib import Path

import orjson

FLOW = """
flow: orders
source: {file: {path: in/*.jsonl, format: jsonl}}
steps:
  - validate: {schema: schemas/order.json}
  - filter: total > 0
sinks:
  erp: {file: {path: out/erp.jsonl, format: jsonl}}
  crm: {file: {path: out/crm.jsonl, format: jsonl}}
delivery: {idempotency_key: id}
observability: {mask: [customer.email]}
runtime: {batch_size: 4}
"""

SCHEMA = {
    "type": "object",
    "required": ["id", "total"],
    "properties": {"id": {"type": "integer"}, "total": {"type": "number"}},
}


def orders(count: int) -> list[dict[str, object]]:
    """Every 5th has no total (dead-lettered), every 3rd has total 0 (filtered out)."""
    rows: list[dict[str, object]] = []
    for n in range(count):
        row: dict[str, object] = {"id": n, "customer": {"email": f"c{n}@example.com"}}
        if n % 5 != 4:
            row["total"] = 0 if n % 3 == 0 else n
        rows.append(row)
    return rows


def write_project(project: Path, count: int, flow: str = FLOW) -> Path:
    """Write the flow, its schema and ``count`` input orders; returns the flow file."""
    (project / "schemas").mkdir(exist_ok=True)
    (project / "schemas" / "order.json").write_text(json.dumps(SCHEMA), encoding="utf-8")
    (project / "in").mkdir(exist_ok=True)
    lines = b"".join(orjson.dumps(row) + b"\n" for row in orders(count))
    (project / "in" / "orders.jsonl").write_bytes(lines)
    path = project / "flows" / "orders.yaml"
    path.write_text(flow, encoding="utf-8")
    return path


def expected(count: int) -> tuple[int, int, int]:
    """(delivered per sink, filtered, dead-lettered) for ``orders(count)``."""
    dead = sum(1 for n in range(count) if n % 5 == 4)
    filtered = sum(1 for n in range(count) if n % 5 != 4 and n % 3 == 0)
    return count - dead - filtered, filtered, dead
