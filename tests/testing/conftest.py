"""A small project whose flow sends orders to an http partner and keeps an audit copy."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import pytest

FLOW = """\
flow: orders
version: 2.3.0
owner: order-team
source:
  file: {path: inbox/*.csv, format: csv}
steps:
  - filter: total > 0
sinks:
  erp:
    http:
      url: ${env:KIT_ERP_URL}/orders
      concurrency: 1
      method: POST
      auth:
        oauth2_client_credentials:
          token_url: ${env:KIT_ERP_TOKEN_URL}
          client_id: ${secret:KIT_ERP_CLIENT_ID}
          client_secret: ${secret:KIT_ERP_CLIENT_SECRET}
  audit:
    file: {path: out/audit.jsonl, format: jsonl}
delivery:
  idempotency_key: order_id
  retry: {attempts: 3, initial: 10ms, max: 50ms}
observability:
  mask: [email, customer.name]
"""


class CaseWriter(Protocol):
    def __call__(self, root: Path, name: str, text: str) -> Path: ...


def _write_case(root: Path, name: str, text: str) -> Path:
    path = root / "tests" / "orders" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def write_case() -> CaseWriter:
    """Writes ``tests/orders/<name>.yaml`` under a project root."""
    return _write_case


@pytest.fixture
def kit_project(tmp_path: Path) -> Path:
    """A project with the ``orders`` flow and no cases yet."""
    root = tmp_path / "kit"
    (root / "flows").mkdir(parents=True)
    (root / "dovetail.yaml").write_text("project: kit-shop\n", encoding="utf-8")
    (root / "flows" / "orders.yaml").write_text(FLOW, encoding="utf-8")
    return root
