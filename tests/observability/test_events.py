"""Flow observers: called per batch with what happened; a failing one never stops a flow;
installed factories attach to every flow; ``dovetail run`` wires tracing from dovetail.yaml."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import anyio
import pytest
from typer.testing import CliRunner

from dovetail.cli.app import app
from dovetail.config.loader import load_flow
from dovetail.core.delivery import DeliveryResult
from dovetail.core.envelope import Envelope
from dovetail.observability.events import Observer, install, installed_for
from dovetail.runtime.pipeline import build_pipeline
from dovetail.runtime.runner import FlowRunner, RunSummary
from dovetail.store.sqlite import SqliteStore
from tests.observability.flows_support import expected, write_project


class Recorder(Observer):
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.depths: list[int] = []

    def received(self, flow: str, batch: Sequence[Envelope]) -> None:
        self.calls["received"] += 1
        self.counts["received"] += len(batch)

    def step(
        self,
        flow: str,
        step: str,
        seconds: float,
        passed: Sequence[Envelope],
        dropped: Sequence[Envelope],
        failed: Sequence[Envelope],
    ) -> None:
        self.counts["filtered"] += len(dropped)
        self.counts[f"failed:{step}"] += len(failed)

    def delivered(self, flow: str, sink: str, seconds: float, result: DeliveryResult) -> None:
        self.counts[f"delivered:{sink}"] += len(result.delivered)

    def dead_lettered(self, flow: str, envelopes: Sequence[Envelope]) -> None:
        self.counts["dead_lettered"] += len(envelopes)

    def inbox_depth(self, flow: str, depth: int) -> None:
        self.depths.append(depth)


class Broken(Observer):
    def received(self, flow: str, batch: Sequence[Envelope]) -> None:
        raise RuntimeError("observer bug")


def run(project: Path, count: int, observers: Sequence[Observer] = ()) -> RunSummary:
    path = write_project(project, count)

    async def main() -> RunSummary:
        store = SqliteStore(project / "s.db")
        await store.open()
        try:
            pipeline = build_pipeline(load_flow(path), store, once=True)
            return await FlowRunner(pipeline, observers=observers).run()
        finally:
            await store.close()

    return anyio.run(main)


def test_observers_see_per_batch_what_the_summary_counts(project: Path) -> None:
    recorder = Recorder()
    summary = run(project, 20, [Broken(), recorder])  # the broken one is logged, not fatal
    delivered, filtered, dead = expected(20)
    assert recorder.calls["received"] == 5  # batches of 4, not messages
    assert recorder.counts["received"] == summary.received == 20
    assert recorder.counts["filtered"] == summary.filtered == filtered
    assert recorder.counts["dead_lettered"] == summary.dead_lettered == dead
    assert recorder.counts["failed:validate"] == dead
    assert recorder.counts["delivered:erp"] == recorder.counts["delivered:crm"] == delivered
    assert recorder.depths and recorder.depths[-1] == 0 and max(recorder.depths) <= 20


def test_installed_factories_attach_to_flows_until_uninstalled(project: Path) -> None:
    recorder = Recorder()
    uninstall = install(lambda flow: recorder if flow.name == "orders" else None)
    try:
        run(project, 8)
        assert recorder.counts["received"] == 8
    finally:
        uninstall()
    assert installed_for(load_flow(project / "flows" / "orders.yaml")) == []
    run(project, 8)
    assert recorder.counts["received"] == 8


def test_dovetail_run_exports_spans_configured_in_the_project(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(project, 6)
    (project / "dovetail.yaml").write_text(
        "project: test\nobservability:\n  tracing: {exporter: console, file: spans.jsonl}\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(project)
    result = CliRunner().invoke(app, ["run", "--once", "--json"])
    assert result.exit_code == 3, result.output  # some messages were dead-lettered
    spans = [json.loads(line) for line in (project / "spans.jsonl").read_text().splitlines()]
    messages = [s for s in spans if s["name"] == "process orders"]
    assert len(messages) == 6
    traces = {s["context"]["trace_id"] for s in messages}
    assert traces == {f"0x{s['attributes']['dovetail.correlation_id']}" for s in messages}
    assert {s["name"] for s in spans} >= {"step validate", "step filter", "send erp", "send crm"}
