"""A message traced across two flows joined by RabbitMQ shows one trace id, and
``dovetail trace`` shows the events of both flows."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from typer.testing import CliRunner

from dovetail.api import open_store
from dovetail.cli.app import app
from dovetail.config.loader import load_flow, load_project
from dovetail.config.model import TracingSettings
from dovetail.observability.tracing import TracingObserver, tracer_provider
from dovetail.runtime.pipeline import build_pipeline
from dovetail.runtime.runner import FlowRunner, RunSummary
from tests.conftest import require_service
from tests.connectors.amqp.amqp_support import AMQP_URL, broker, unique


def flow_files(project: Path, queue: str) -> tuple[Path, Path]:
    (project / "in").mkdir()
    lines = "".join(json.dumps({"id": n, "total": 10 + n}) + "\n" for n in range(3))
    (project / "in" / "orders.jsonl").write_text(lines, encoding="utf-8")
    publisher = project / "flows" / "shop-to-broker.yaml"
    publisher.write_text(
        "flow: shop-to-broker\n"
        "source: {file: {path: in/*.jsonl, format: jsonl}}\n"
        f"sink: {{amqp: {{url: '{AMQP_URL}', routing_key: {queue}}}}}\n",
        encoding="utf-8",
    )
    consumer = project / "flows" / "broker-to-erp.yaml"
    consumer.write_text(
        "flow: broker-to-erp\n"
        f"source: {{amqp: {{url: '{AMQP_URL}', queue: {queue}, batch_timeout: 50ms}}}}\n"
        "steps:\n  - filter: total > 0\n"
        "sink: {file: {path: out/erp.jsonl, format: jsonl}}\n",
        encoding="utf-8",
    )
    return publisher, consumer


def test_one_trace_id_across_two_flows_joined_by_a_broker(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_service("RabbitMQ", "127.0.0.1", 5672)
    queue = unique("traced")
    publisher, consumer = flow_files(project, queue)
    exporter = InMemorySpanExporter()
    settings = TracingSettings(exporter="console")
    observer = TracingObserver(tracer_provider(settings, exporter=exporter, batch=False))

    async def main() -> list[RunSummary]:
        async with broker() as client:
            await client.declare(queue)
            store = await open_store(load_project(project))
            try:
                summaries = []
                for path in (publisher, consumer):
                    pipeline = build_pipeline(load_flow(path), store, once=True)
                    summaries.append(await FlowRunner(pipeline, observers=[observer]).run())
                return summaries
            finally:
                await store.close()
                await client.delete(queues=[queue])

    sent, received = anyio.run(main)
    assert sent.delivered_total == received.delivered_total == 3
    spans = exporter.get_finished_spans()
    by_flow: dict[str, dict[int, list[int]]] = {}
    for span in spans:
        flow = (span.attributes or {}).get("dovetail.flow")
        if span.name.startswith("process ") and isinstance(flow, str):
            by_flow.setdefault(flow, {}).setdefault(span.context.trace_id, []).append(
                span.context.span_id
            )
    assert len(by_flow["shop-to-broker"]) == 3
    assert set(by_flow["shop-to-broker"]) == set(by_flow["broker-to-erp"])
    # flow B's message span is a child of flow A's send span: one unbroken trace
    sends = {s.context.span_id: s for s in spans if s.name == "send sink"}
    for span in spans:
        if span.name == "process broker-to-erp":
            assert span.parent is not None and span.parent.span_id in sends
            assert sends[span.parent.span_id].context.trace_id == span.context.trace_id
    steps = [s for s in spans if s.name == "step filter"]
    assert len(steps) == 3

    correlation = f"{next(iter(by_flow['broker-to-erp'])):032x}"
    monkeypatch.chdir(project)
    result = CliRunner().invoke(app, ["trace", correlation, "--json"])
    assert result.exit_code == 0, result.output
    assert flows_in(json.loads(result.stdout)) == {"shop-to-broker", "broker-to-erp"}


def flows_in(document: object) -> set[str]:
    """Every ``flow`` value anywhere in a JSON document (whatever shape ``trace`` prints)."""
    if isinstance(document, dict):
        found = {document["flow"]} if isinstance(document.get("flow"), str) else set()
        return found.union(*(flows_in(v) for v in document.values()))
    if isinstance(document, list):
        return set().union(*(flows_in(v) for v in document))
    return set()
