"""A partner's long ``Retry-After`` parks the message in the store; the others keep flowing.

Real pieces: the ``dovetail`` CLI, the ``http`` sink, the fault-injecting partner on
127.0.0.1 and the SQLite store. Time passing is simulated by moving the parked message's
``next_attempt_at`` into the past.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from dovetail.cli.app import app
from dovetail.testing.partner import PartnerServer

FLOW = """\
flow: orders-out
version: 1.0.0
source:
  file: {path: inbox/*.jsonl, format: jsonl}
sink:
  http:
    url: ${env:PARTNER_URL}/sales-orders
    already_delivered: [409]
delivery:
  idempotency_key: order_id
  retry: {attempts: 5, initial: 50ms, max: 5m, park_after: 10s}
runtime: {batch_size: 2, workers: 1}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "dovetail.yaml").write_text("project: parking\n", encoding="utf-8")
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "orders-out.yaml").write_text(FLOW, encoding="utf-8")
    (tmp_path / "inbox").mkdir()
    lines = [orjson.dumps({"order_id": f"SO-{i}", "amount": i}).decode() for i in range(1, 7)]
    (tmp_path / "inbox" / "orders.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_retry_after_parks_and_a_later_run_delivers_once(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    with PartnerServer(retry_after=120, conflict_on_duplicate_key="order_id") as partner:
        monkeypatch.setenv("PARTNER_URL", partner.url)
        partner.script("/sales-orders", [429])

        result = runner.invoke(app, ["run", "--once", "--json"])
        assert result.exit_code == 0, result.output
        (summary,) = orjson.loads(result.output)
        assert summary["parked"] == 1
        assert summary["dead_lettered"] == 0
        accepted = [r.body["order_id"] for r in partner.requests() if r.accepted]
        assert sorted(accepted) == [f"SO-{i}" for i in range(2, 7)]

        listed = runner.invoke(app, ["dlq", "parked", "--json"])
        assert listed.exit_code == 0, listed.output
        (parked,) = orjson.loads(listed.output)
        assert parked["sink"] == "sink"
        assert parked["idempotency_key"] == "SO-1"
        assert parked["reason"].startswith("HTTP 429")

        # before it is due, another run leaves it parked and sends nothing
        requests_before = len(partner.requests())
        assert runner.invoke(app, ["run", "--once"]).exit_code == 0
        assert len(partner.requests()) == requests_before

        with sqlite3.connect(project / ".dovetail" / "state.db") as connection:
            connection.execute("UPDATE dovetail_parked SET next_attempt_at = 0")
        result = runner.invoke(app, ["run", "--once", "--json"])
        assert result.exit_code == 0, result.output
        (summary,) = orjson.loads(result.output)
        assert summary["redriven"] == 1
        assert summary["delivered"] == {"sink": 1}

        accepted = [r.body["order_id"] for r in partner.requests() if r.accepted]
        assert sorted(accepted) == sorted(f"SO-{i}" for i in range(1, 7))
        assert partner.duplicates("order_id") == 0
        assert orjson.loads(runner.invoke(app, ["dlq", "parked", "--json"]).output) == []
