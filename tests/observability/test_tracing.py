"""OpenTelemetry spans: one per message, step and sink; the trace id is the correlation id;
the incoming traceparent is the parent; outgoing traceparents name the sink span."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import anyio
import orjson
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from dovetail.config.loader import load_flow
from dovetail.config.model import TracingSettings
from dovetail.core.ack import Settlement
from dovetail.core.envelope import Envelope
from dovetail.core.ids import OUTGOING_SPAN_IDS, make_traceparent
from dovetail.observability.masking import MASK
from dovetail.observability.tracing import TracingObserver, tracer_provider
from dovetail.runtime.pipeline import build_pipeline
from dovetail.runtime.runner import FlowRunner, RunSummary
from dovetail.store.sqlite import SqliteStore
from dovetail.testing.fakes import CaptureSink, ListSource
from tests.observability.flows_support import FLOW, write_project

INCOMING_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING_SPAN = "00f067aa0ba902b7"


def in_memory_tracing(sample_ratio: float = 1.0) -> tuple[TracingObserver, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    settings = TracingSettings(exporter="console", sample_ratio=sample_ratio)
    provider = tracer_provider(settings, exporter=exporter, batch=False)
    return TracingObserver(provider), exporter


class HeaderSink(CaptureSink):
    """Records the traceparent a broker or HTTP sink would send for each message."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.traceparents: dict[str, str] = {}

    async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
        for envelope in batch:
            self.traceparents[envelope.id] = make_traceparent(envelope.correlation_id)
        return await super().write(batch)


def run_orders(
    project: Path, observer: TracingObserver, count: int, flow: str = FLOW
) -> dict[str, HeaderSink]:
    path = write_project(project, count, flow)
    rows = [orjson.loads(line) for line in (project / "in" / "orders.jsonl").read_bytes().split()]
    first = Envelope(
        payload=rows[1],
        settlement=Settlement(),
        correlation_id=INCOMING_TRACE,
        headers={"traceparent": f"00-{INCOMING_TRACE}-{INCOMING_SPAN}-01"},
    )
    sinks = {"erp": HeaderSink("erp"), "crm": HeaderSink("crm")}

    async def main() -> RunSummary:
        store = SqliteStore(project / "s.db")
        await store.open()
        try:
            source = ListSource([first, *rows[2:]], batch_size=4)
            pipeline = build_pipeline(
                load_flow(path), store, once=True, source=source, sinks=dict(sinks)
            )
            return await FlowRunner(pipeline, observers=[observer]).run()
        finally:
            await store.close()

    anyio.run(main)
    return sinks


def by_name(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def test_each_message_is_a_trace_with_step_and_sink_spans(project: Path) -> None:
    observer, exporter = in_memory_tracing()
    sinks = run_orders(project, observer, count=10)
    spans = exporter.get_finished_spans()
    messages = by_name(spans, "process orders")
    assert len(messages) == 9  # rows 1..9
    by_id = {s.attributes["messaging.message.id"]: s for s in messages if s.attributes}
    for span in messages:
        assert span.attributes is not None
        assert f"{span.context.trace_id:032x}" == span.attributes["dovetail.correlation_id"]
    # the incoming traceparent: same trace, its span is the parent
    incoming = next(s for s in messages if s.context.trace_id == int(INCOMING_TRACE, 16))
    assert incoming.parent is not None and incoming.parent.span_id == int(INCOMING_SPAN, 16)
    # steps are children of the message span, one per message and step
    for step in ("step validate", "step filter"):
        for child in by_name(spans, step):
            assert child.parent is not None
            parent = next(m for m in messages if m.context.span_id == child.parent.span_id)
            assert parent.context.trace_id == child.context.trace_id
    assert len(by_name(spans, "step validate")) == 9
    failed = [
        s for s in by_name(spans, "step validate") if s.status.status_code == StatusCode.ERROR
    ]
    assert len(failed) == 2  # ids 4 and 9 have no total
    dead = [s for s in messages if (s.attributes or {}).get("dovetail.outcome") == "dead_lettered"]
    assert len(dead) == 2 and all(s.status.status_code == StatusCode.ERROR for s in dead)
    assert all((s.attributes or {}).get("error.type") == "ValidationFailed" for s in dead)
    filtered = [s for s in messages if (s.attributes or {}).get("dovetail.outcome") == "filtered"]
    assert len(filtered) == 2  # ids 3 and 6 have total 0
    # the traceparent a sink sends names its send span: the next system continues the trace
    sends = by_name(spans, "send erp")
    assert len(sends) == len(sinks["erp"].traceparents) == 5
    for message_id, header in sinks["erp"].traceparents.items():
        _, trace_id, span_id, _ = header.split("-")
        send = next(
            s
            for s in sends
            if s.parent is not None and s.parent.span_id == by_id[message_id].context.span_id
        )
        assert (trace_id, span_id) == (
            f"{send.context.trace_id:032x}",
            f"{send.context.span_id:016x}",
        )
    assert not OUTGOING_SPAN_IDS.get()  # tracing leaves nothing in the caller's context


def test_span_attributes_carry_no_payload_and_masked_values(project: Path) -> None:
    observer, exporter = in_memory_tracing()
    # the idempotency key is a masked field: it shows masked in the span attributes
    flow = FLOW.replace("idempotency_key: id", "idempotency_key: customer.email").replace(
        "mask: [customer.email]", "mask: [customer.email], detect: false"
    )
    run_orders(project, observer, count=10, flow=flow)
    spans = exporter.get_finished_spans()
    delivered = [
        s
        for s in by_name(spans, "process orders")
        if "dovetail.outcome" not in (s.attributes or {})
    ]
    assert len(delivered) == 5
    assert all((s.attributes or {})["dovetail.idempotency_key"] == MASK for s in delivered)
    text = " ".join(f"{s.attributes} {s.status.description} {s.events}" for s in spans)
    assert "example.com" not in text
    assert not any("payload" in key for s in spans for key in s.attributes or {})


def test_unsampled_messages_make_no_spans(project: Path) -> None:
    observer, exporter = in_memory_tracing(sample_ratio=0.0)
    sinks = run_orders(project, observer, count=10)
    names = {s.name for s in exporter.get_finished_spans()}
    # only the message with a sampled incoming traceparent is traced
    assert names <= {"process orders", "step validate", "step filter", "send erp", "send crm"}
    assert all(s.context.trace_id == int(INCOMING_TRACE, 16) for s in exporter.get_finished_spans())
    assert len(sinks["erp"].received) == 5
