"""``dovetail trace`` and ``dovetail kpi`` on a store with a known history."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from typer.testing import CliRunner

from dovetail.api import run_flow_async
from dovetail.cli.app import app
from dovetail.config.loader import load_project
from dovetail.core.ack import Settlement
from dovetail.core.envelope import Envelope, SourcePosition
from dovetail.observability.journey import created_at
from dovetail.store.factory import store_from_url
from dovetail.testing.fakes import ListSource
from tests.observability.test_kpi import ORDERS, PartnerSink, write_flow

runner = CliRunner()


def order(correlation_id: str) -> Envelope:
    return Envelope(
        payload={"id": 1, "total": 5},
        settlement=Settlement(),
        correlation_id=correlation_id,
        position=SourcePosition(kind="list", ref="list", offset=0),
    )


@pytest.fixture
def shared_correlation(project: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """One order through two flows under one correlation id: ``orders`` delivers it on the
    second attempt, ``billing`` dead-letters it. Returns the two message ids by flow."""
    orders = write_flow(project, ORDERS, "orders")
    billing = write_flow(project, ORDERS.replace("flow: orders", "flow: billing"), "billing")
    flaky, rejecting = PartnerSink(), PartnerSink()
    flaky.flaky = {1: 1}
    rejecting.reject = {1}
    envelopes = {"orders": order("shop-req-1"), "billing": order("shop-req-1")}

    async def main() -> None:
        store = store_from_url(load_project(project).store_url())
        await store.open()
        try:
            for flow, sink in ((orders, flaky), (billing, rejecting)):
                await run_flow_async(
                    flow,
                    store=store,
                    source=ListSource([envelopes[flow.name]]),
                    sinks={"erp": sink},
                )
        finally:
            await store.close()

    anyio.run(main)
    monkeypatch.chdir(project)
    return {name: envelope.id for name, envelope in envelopes.items()}


def test_trace_follows_a_correlation_id_across_flows(shared_correlation: dict[str, str]) -> None:
    result = runner.invoke(app, ["trace", "shop-req-1", "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    by_flow = {m["flow"]: m for m in found["messages"]}
    assert set(by_flow) == {"orders", "billing"}
    orders, billing = by_flow["orders"], by_flow["billing"]
    assert orders["message_id"] == shared_correlation["orders"]
    assert orders["outcome"] == "delivered" and billing["outcome"] == "dead_lettered"
    assert [(e["event"], e["attempt"]) for e in orders["events"]] == [
        ("received", None),
        ("attempt_failed", 1),
        ("delivered", 2),
    ]
    assert orders["events"][1]["reason"] == "HTTP 503"  # the failed attempt, retried in place
    assert [e["event"] for e in billing["events"]] == ["received", "dead_lettered"]
    assert billing["events"][1]["reason"] == "HTTP 422: order 1 rejected"
    assert billing["events"][1]["step"] == "sink:erp"
    created = created_at(shared_correlation["orders"])
    assert created is not None and orders["received_at"] == created.isoformat(
        timespec="milliseconds"
    )
    for message in found["messages"]:
        assert message["events"][0]["position"] == "list#0"  # where it came from
        latencies = [e["latency_ms"] for e in message["events"]]
        assert latencies[0] == 0.0 and latencies == sorted(latencies)
        assert "payload" not in json.dumps(message)


def test_trace_by_message_id_shows_the_other_flows_of_its_correlation(
    shared_correlation: dict[str, str],
) -> None:
    result = runner.invoke(app, ["trace", shared_correlation["billing"]])
    assert result.exit_code == 0, result.output
    assert "2 message(s) in 2 flow(s); correlation id shop-req-1" in result.output
    lines = result.output.splitlines()
    billing = next(line for line in lines if shared_correlation["billing"] in line)
    orders = next(line for line in lines if shared_correlation["orders"] in line)
    assert "billing" in billing and "dead-lettered after" in billing
    assert "orders" in orders and "delivered after" in orders


def test_trace_of_an_unknown_id_exits_1(shared_correlation: dict[str, str]) -> None:
    result = runner.invoke(app, ["trace", "no-such-id"])
    assert result.exit_code == 1


def test_kpi_json_reports_each_flow(shared_correlation: dict[str, str]) -> None:
    result = runner.invoke(app, ["kpi", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    by_flow = {f["flow"]: f for f in report["flows"]}
    assert set(by_flow) == {"billing", "orders"}
    assert by_flow["orders"]["success_rate"] == 1.0 and by_flow["orders"]["retries"] == 1
    assert by_flow["billing"]["success_rate"] == 0.0
    assert (by_flow["billing"]["dead_lettered"], by_flow["billing"]["dlq_depth"]) == (1, 1)
    assert report["total"]["messages"] == 2 and report["total"]["success_rate"] == 0.5
    only = json.loads(runner.invoke(app, ["kpi", "--flow", "billing", "--json"]).output)
    assert [f["flow"] for f in only["flows"]] == ["billing"]


def test_kpi_table_lists_the_flows(shared_correlation: dict[str, str]) -> None:
    result = runner.invoke(app, ["kpi", "--since", "1h"])
    assert result.exit_code == 0, result.output
    for text in ("orders", "billing", "100.0%", "0.0%", "50.0%"):
        assert text in result.output


def test_kpi_on_an_empty_store_is_zeros(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    result = runner.invoke(app, ["kpi", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["flows"] == []
    assert report["total"]["messages"] == report["total"]["dlq_depth"] == 0
    table = runner.invoke(app, ["kpi"])
    assert table.exit_code == 0 and "no messages in this window" in table.output


@pytest.mark.parametrize("args", [["--since", "yesterday"], ["--since", "1h", "--until", "2h"]])
def test_kpi_refuses_a_bad_window(
    project: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.chdir(project)
    assert runner.invoke(app, ["kpi", *args]).exit_code == 2
