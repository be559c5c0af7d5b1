"""Every attempt is visible: ``trace``, the DLQ history and ``kpi`` name each one's cause.

Real pieces: the ``dovetail`` CLI, the ``http`` sink with OAuth2, the fault-injecting partner
on 127.0.0.1 and the SQLite store. Retries happen in place (short waits), so before this was
recorded a message delivered at attempt 3 showed only ``delivered, attempt 3``.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from dovetail.cli import exit_codes
from dovetail.cli.app import app
from dovetail.cli.render import console
from dovetail.testing.partner import PartnerServer

FLOW = """\
flow: orders-out
version: 1.0.0
source:
  file: {path: inbox/*.jsonl, format: jsonl}
sink:
  http:
    url: ${env:PARTNER_URL}/sales-orders
    auth:
      oauth2_client_credentials:
        token_url: ${env:PARTNER_URL}/oauth/token
        client_id: shop
        client_secret: s3cret
delivery:
  idempotency_key: order_id
  retry: {attempts: 3, initial: 10ms, max: 2s}
runtime: {batch_size: 10, workers: 1}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "dovetail.yaml").write_text("project: attempts\n", encoding="utf-8")
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "orders-out.yaml").write_text(FLOW, encoding="utf-8")
    (tmp_path / "inbox").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _drop(project: Path, name: str, order_id: str) -> None:
    line = orjson.dumps({"order_id": order_id, "secret_note": "VALUE-123"}).decode()
    (project / "inbox" / name).write_text(line + "\n", encoding="utf-8")


def _events(runner: CliRunner, ident: str) -> list[dict[str, object]]:
    traced = runner.invoke(app, ["trace", ident, "--json"])
    assert traced.exit_code == 0, traced.output
    (message,) = orjson.loads(traced.output)["messages"]
    events: list[dict[str, object]] = message["events"]
    return events


def test_trace_dlq_history_and_kpi_show_every_attempt(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    with PartnerServer(client_id="shop", client_secret="s3cret", retry_after=1) as partner:
        monkeypatch.setenv("PARTNER_URL", partner.url)

        # delivered at attempt 3, after a 503 and a 429 with Retry-After: 1
        partner.script("/sales-orders", [503, 429])
        _drop(project, "a.jsonl", "SO-1")
        result = runner.invoke(app, ["run", "--once", "--json"])
        assert result.exit_code == 0, result.output
        ident = next(r.headers["x-correlation-id"] for r in partner.requests("/sales-orders"))
        events = _events(runner, ident)
        steps = [(e["event"], e["attempt"]) for e in events]
        assert steps == [
            ("received", None),
            ("attempt_failed", 1),
            ("attempt_failed", 2),
            ("delivered", 3),
        ]
        assert events[1]["reason"] == "HTTP 503"
        assert events[2]["reason"] == "HTTP 429, Retry-After 1s"
        assert isinstance(events[2]["retry_in"], float) and events[2]["retry_in"] >= 1.0
        monkeypatch.setattr(console, "width", 250)
        shown = runner.invoke(app, ["trace", ident])
        assert "HTTP 429, Retry-After 1s; next attempt in" in shown.output

        # the partner refuses the token: 401, renewed, sent again within the same attempt
        partner.script("/sales-orders", [401])
        _drop(project, "b.jsonl", "SO-2")
        assert runner.invoke(app, ["run", "--once"]).exit_code == 0
        ident = next(
            r.headers["x-correlation-id"]
            for r in partner.requests("/sales-orders")
            if r.body["order_id"] == "SO-2"
        )
        renewed = [e for e in _events(runner, ident) if e["event"] == "token_renewed"]
        assert [(e["attempt"], e["reason"]) for e in renewed] == [(1, "HTTP 401 → token renewed")]

        # three failures: the dead letter's history holds all three attempts
        partner.script("/sales-orders", [503, 502, 503])
        _drop(project, "c.jsonl", "SO-3")
        assert runner.invoke(app, ["run", "--once"]).exit_code == exit_codes.SOME_FAILED

    listed = runner.invoke(app, ["dlq", "list", "--json"])
    (letter,) = orjson.loads(listed.output)
    shown = runner.invoke(app, ["dlq", "show", str(letter["id"]), "--json"])
    assert shown.exit_code == 0, shown.output
    history = orjson.loads(shown.output)["history"]
    assert [h["attempt"] for h in history] == [1, 2, 3]
    assert [h["reason"].split(" from ")[0] for h in history] == ["HTTP 503", "HTTP 502", "HTTP 503"]
    assert all("retry_in" in h for h in history[:2])
    assert "VALUE-123" not in orjson.dumps(history).decode()  # causes carry no payload values

    kpis = runner.invoke(app, ["kpi", "--json"])
    assert kpis.exit_code == 0, kpis.output
    assert orjson.loads(kpis.output)["total"]["token_renewals"] == 1
