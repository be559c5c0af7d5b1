"""OpenTelemetry tracing of flows (extra ``tracing``): spans per message, step and sink.

Each message gets a ``process <flow>`` span whose trace id is the message's correlation id
(a W3C trace id: the one from the incoming ``traceparent``, or a new one), with the incoming
``traceparent``'s span as its parent when there is one. Each step a message goes through is a
child ``step <name>`` span covering the time its batch spent in the step, and each delivery a
``send <sink>`` span; while that span is open, an outgoing ``traceparent`` written by the sink
names it as the parent, so the next flow or system continues the same trace.

Spans are made only while tracing is on, and only for sampled messages (the sampler decides on
the trace id, so every flow makes the same choice for one message). Attributes hold ids,
outcomes and masked failure reasons, never payloads.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from dovetail.core.envelope import Envelope
from dovetail.core.ids import OUTGOING_SPAN_IDS
from dovetail.observability.events import Observer
from dovetail.observability.masking import policy_for

if TYPE_CHECKING:
    from dovetail.config.model import TracingSettings
    from dovetail.core.delivery import DeliveryResult

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


class CorrelationIdGenerator(IdGenerator):
    """Random ids, except that a new trace takes the trace id the observer asks for."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()
        self.next_trace_id = 0

    def generate_span_id(self) -> int:
        return self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        return self.next_trace_id or self._random.generate_trace_id()


def tracer_provider(
    settings: TracingSettings,
    project_dir: Path | None = None,
    *,
    exporter: SpanExporter | None = None,
    batch: bool = True,
) -> TracerProvider:
    """A provider for ``settings``: ratio sampling on the trace id, trace ids from correlation
    ids, spans to ``exporter`` (default: the one ``settings`` names)."""
    provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
        resource=Resource.create({"service.name": settings.service_name}),
        id_generator=CorrelationIdGenerator(),
    )
    chosen = exporter if exporter is not None else span_exporter(settings, project_dir)
    processor = BatchSpanProcessor(chosen) if batch else SimpleSpanProcessor(chosen)
    provider.add_span_processor(processor)
    return provider


def span_exporter(settings: TracingSettings, project_dir: Path | None) -> SpanExporter:
    """The exporter ``settings`` names: OTLP over HTTP, or console (stderr or a file)."""
    if settings.exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        if settings.endpoint:
            return OTLPSpanExporter(endpoint=settings.endpoint)
        return OTLPSpanExporter()
    out: Any = sys.stderr
    if settings.file:
        path = Path(settings.file)
        if project_dir is not None and not path.is_absolute():
            path = project_dir / path
        path.parent.mkdir(parents=True, exist_ok=True)
        out = path.open("a", encoding="utf-8")  # lives as long as the exporter
    return ConsoleSpanExporter(
        service_name=settings.service_name,
        out=out,
        formatter=lambda span: span.to_json(indent=None) + "\n",
    )


class TracingObserver(Observer):
    """Makes the spans of every flow it observes; see the module docstring."""

    def __init__(self, provider: TracerProvider) -> None:
        ids = provider.id_generator
        if not isinstance(ids, CorrelationIdGenerator):
            raise ValueError("the tracer provider must come from dovetail's tracer_provider()")
        self.provider = provider
        self._ids = ids
        self._tracer = provider.get_tracer("dovetail")
        self._messages: dict[tuple[str, str], Span] = {}
        self._by_correlation: dict[tuple[str, str], Span] = {}
        self._sends: dict[tuple[str, str, int], Span] = {}

    # -- message spans --------------------------------------------------------------------

    def _message_span(self, flow: str, envelope: Envelope, start: int | None = None) -> Span:
        key = (flow, envelope.id)
        span = self._messages.get(key)
        if span is not None:
            return span
        parent = self._by_correlation.get((flow, envelope.correlation_id))
        context = trace.set_span_in_context(parent) if parent is not None else None
        if context is None:
            context = _remote_parent(envelope)
        correlation = envelope.correlation_id
        self._ids.next_trace_id = int(correlation, 16) if _TRACE_ID.match(correlation) else 0
        try:
            span = self._tracer.start_span(
                f"process {flow}",
                context=context,
                kind=SpanKind.CONSUMER,
                start_time=start,
                attributes=self._identity(flow, envelope),
            )
        finally:
            self._ids.next_trace_id = 0
        self._messages[key] = span
        self._by_correlation.setdefault((flow, correlation), span)
        return span

    def _identity(self, flow: str, envelope: Envelope) -> dict[str, Any]:
        policy = policy_for(flow)
        attributes: dict[str, Any] = {
            "dovetail.flow": flow,
            "messaging.message.id": envelope.id,
            "dovetail.correlation_id": policy.text(envelope.correlation_id),
        }
        if envelope.position is not None:
            attributes["dovetail.source_position"] = policy.text(envelope.position.describe())
        key = envelope.headers.get("idempotency-key")
        if key is not None:
            attributes["dovetail.idempotency_key"] = policy.text(key, payload=envelope.original)
        return attributes

    def _end_message(self, flow: str, envelope: Envelope) -> None:
        span = self._messages.pop((flow, envelope.id), None)
        if span is None:
            return
        if self._by_correlation.get((flow, envelope.correlation_id)) is span:
            del self._by_correlation[(flow, envelope.correlation_id)]
        span.end()

    # -- observer calls -------------------------------------------------------------------

    def received(self, flow: str, batch: Sequence[Envelope]) -> None:
        now = time.time_ns()
        for envelope in batch:
            self._message_span(flow, envelope, now)

    def step(
        self,
        flow: str,
        step: str,
        seconds: float,
        passed: Sequence[Envelope],
        dropped: Sequence[Envelope],
        failed: Sequence[Envelope],
    ) -> None:
        end = time.time_ns()
        start = end - int(seconds * 1e9)
        outcomes: list[tuple[str, Sequence[Envelope]]] = [("filtered", dropped), ("failed", failed)]
        if step != "route":
            outcomes.insert(0, ("passed", passed))
        for outcome, envelopes in outcomes:
            for envelope in envelopes:
                parent = self._message_span(flow, envelope, start)
                if not parent.is_recording():
                    continue
                span = self._tracer.start_span(
                    f"step {step}",
                    context=trace.set_span_in_context(parent),
                    start_time=start,
                    attributes={"dovetail.step": step, "dovetail.outcome": outcome},
                )
                if outcome == "failed":
                    self._fail(flow, span, envelope)
                elif outcome == "filtered":
                    parent.set_attribute("dovetail.outcome", "filtered")
                span.end(end_time=end)

    def delivering(self, flow: str, sink: str, batch: Sequence[Envelope]) -> None:
        """Open the send spans; called in the task that delivers ``batch`` to ``sink``, whose
        context then gives the sink their ids for outgoing ``traceparent`` headers."""
        now = time.time_ns()
        outgoing: dict[str, str] = {}
        OUTGOING_SPAN_IDS.set(outgoing)
        for envelope in batch:
            parent = self._message_span(flow, envelope, now)
            if not parent.is_recording():
                continue
            attributes: dict[str, Any] = {"dovetail.step": f"sink:{sink}", "dovetail.sink": sink}
            key = envelope.headers.get("idempotency-key")
            if key is not None:  # stamped after the message span was opened
                masked = policy_for(flow).text(key, payload=envelope.original)
                attributes["dovetail.idempotency_key"] = masked
                parent.set_attribute("dovetail.idempotency_key", masked)
            span = self._tracer.start_span(
                f"send {sink}",
                context=trace.set_span_in_context(parent),
                kind=SpanKind.PRODUCER,
                start_time=now,
                attributes=attributes,
            )
            self._sends[(flow, sink, id(envelope))] = span
            if _TRACE_ID.match(envelope.correlation_id):
                outgoing[envelope.correlation_id] = format(span.get_span_context().span_id, "016x")

    def delivered(self, flow: str, sink: str, seconds: float, result: DeliveryResult) -> None:
        outcomes = (
            ("delivered", result.delivered),
            ("duplicate_skipped", result.duplicates),
            ("failed", result.failed),
            ("parked", [p.envelope for p in result.parked]),
        )
        outgoing = OUTGOING_SPAN_IDS.get()
        if outgoing:
            outgoing.clear()
        for outcome, envelopes in outcomes:
            for envelope in envelopes:
                span = self._sends.pop((flow, sink, id(envelope)), None)
                if span is None:
                    continue
                span.set_attribute("dovetail.outcome", outcome)
                span.set_attribute("dovetail.attempt", envelope.attempt)
                if outcome == "failed":
                    self._fail(flow, span, envelope)
                span.end()

    def dead_lettered(self, flow: str, envelopes: Sequence[Envelope]) -> None:
        for envelope in envelopes:
            span = self._messages.get((flow, envelope.id))
            if span is not None:
                span.set_attribute("dovetail.outcome", "dead_lettered")
                self._fail(flow, span, envelope)

    def parked(self, flow: str, sink: str, envelopes: Sequence[Envelope]) -> None:
        for envelope in envelopes:
            span = self._messages.get((flow, envelope.id))
            if span is not None:
                span.set_attribute("dovetail.outcome", "parked")

    def settled(self, flow: str, envelopes: Sequence[Envelope], seconds: float) -> None:
        for envelope in envelopes:
            self._end_message(flow, envelope)

    def finished(self, flow: str) -> None:
        """End what is still open for ``flow`` (messages left unsettled by a stop)."""
        for send in [k for k in self._sends if k[0] == flow]:
            self._sends.pop(send).end()
        for message in [k for k in self._messages if k[0] == flow]:
            self._messages.pop(message).end()
        for correlation in [k for k in self._by_correlation if k[0] == flow]:
            del self._by_correlation[correlation]

    def _fail(self, flow: str, span: Span, envelope: Envelope) -> None:
        failure = envelope.failure
        if failure is None:
            return
        reason = policy_for(flow).text(failure.reason, payload=envelope.original)
        span.set_status(Status(StatusCode.ERROR, reason))
        span.set_attribute("error.type", failure.error_class)
        span.set_attribute("dovetail.failure.step", failure.step)


def _remote_parent(envelope: Envelope) -> Any:
    """The context of the incoming ``traceparent`` when it continues this message's trace."""
    header = envelope.headers.get("traceparent")
    if not header:
        return None
    match = _TRACEPARENT.match(header.strip().lower())
    if match is None or match.group(1) != envelope.correlation_id:
        return None
    parent = SpanContext(
        trace_id=int(match.group(1), 16),
        span_id=int(match.group(2), 16),
        is_remote=True,
        trace_flags=TraceFlags(int(match.group(3), 16) & 1),
    )
    if not parent.is_valid:
        return None
    return trace.set_span_in_context(NonRecordingSpan(parent))
