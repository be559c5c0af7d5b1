"""Prometheus metrics of running flows (extra ``metrics``), served on ``/metrics``.

``MetricsObserver`` turns the runner's per-batch observer calls into counters, histograms and
gauges in its own ``CollectorRegistry``; ``serve_metrics`` exposes that registry over HTTP.
Latency histograms observe one value per batch (the time a batch spent in a step, in a sink's
delivery with its retries, from being taken to being settled), not per message: the engine
works in batches and a per-message observation would cost more than the work it measures.
The metric names and labels are listed in docs/observability.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dovetail.core.envelope import Envelope
from dovetail.observability.events import CircuitState, Observer

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from dovetail.core.delivery import DeliveryResult

CIRCUIT_VALUES: dict[str, int] = {"closed": 0, "half_open": 1, "open": 2}
"""Values of the ``dovetail_circuit_state`` gauge."""

LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class MetricsObserver(Observer):
    """Counts what flows do into Prometheus metrics; one instance serves every flow."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry

        def counter(name: str, doc: str, labels: Sequence[str]) -> Any:
            return Counter(name, doc, labels, registry=reg)

        def histogram(name: str, doc: str, labels: Sequence[str]) -> Any:
            return Histogram(name, doc, labels, registry=reg, buckets=LATENCY_BUCKETS)

        self.received_total = counter(
            "dovetail_messages_received", "Messages taken from the source.", ["flow"]
        )
        self.delivered_total = counter(
            "dovetail_messages_delivered", "Messages a sink confirmed.", ["flow", "sink"]
        )
        self.duplicates_total = counter(
            "dovetail_messages_duplicates_skipped",
            "Messages not sent again: their idempotency key was already delivered.",
            ["flow", "sink"],
        )
        self.filtered_total = counter(
            "dovetail_messages_filtered",
            "Messages filtered out (by a filter step, or routed to no sink).",
            ["flow", "step"],
        )
        self.failed_total = counter(
            "dovetail_messages_failed",
            "Messages that failed at a step or sink for good (then dead-lettered).",
            ["flow", "step"],
        )
        self.dead_lettered_total = counter(
            "dovetail_messages_dead_lettered",
            "Messages written to the dead-letter queue.",
            ["flow", "step", "reason_class"],
        )
        self.retries_total = counter(
            "dovetail_delivery_retries", "Delivery attempts to be made again.", ["flow", "sink"]
        )
        self.parked_total = counter(
            "dovetail_messages_parked",
            "Messages parked in the store for a later attempt.",
            ["flow", "sink"],
        )
        self.rate_limit_wait_total = counter(
            "dovetail_rate_limit_wait_seconds",
            "Time writes waited for a sink's rate limit (summed over concurrent writes).",
            ["flow", "sink"],
        )
        self.step_seconds = histogram(
            "dovetail_step_batch_seconds", "Time a batch spent in a step.", ["flow", "step"]
        )
        self.sink_seconds = histogram(
            "dovetail_sink_batch_seconds",
            "Time a batch's delivery to a sink took, retries and waits included.",
            ["flow", "sink"],
        )
        self.batch_seconds = histogram(
            "dovetail_batch_seconds",
            "Time from a batch being taken from the source to its settlement.",
            ["flow"],
        )
        self.inbox = Gauge(
            "dovetail_inbox_depth",
            "Messages taken in by the flow and not yet settled.",
            ["flow"],
            registry=reg,
        )
        self.circuit = Gauge(
            "dovetail_circuit_state",
            "Circuit breaker of a sink: 0 closed, 1 half-open, 2 open.",
            ["flow", "sink"],
            registry=reg,
        )

    def received(self, flow: str, batch: Sequence[Envelope]) -> None:
        self.received_total.labels(flow).inc(len(batch))

    def step(
        self,
        flow: str,
        step: str,
        seconds: float,
        passed: Sequence[Envelope],
        dropped: Sequence[Envelope],
        failed: Sequence[Envelope],
    ) -> None:
        if step != "route":
            self.step_seconds.labels(flow, step).observe(seconds)
        if dropped:
            self.filtered_total.labels(flow, step).inc(len(dropped))
        if failed:
            self.failed_total.labels(flow, step).inc(len(failed))

    def delivered(self, flow: str, sink: str, seconds: float, result: DeliveryResult) -> None:
        self.sink_seconds.labels(flow, sink).observe(seconds)
        self.delivered_total.labels(flow, sink).inc(len(result.delivered))
        if result.duplicates:
            self.duplicates_total.labels(flow, sink).inc(len(result.duplicates))
        if result.failed:
            self.failed_total.labels(flow, f"sink:{sink}").inc(len(result.failed))

    def dead_lettered(self, flow: str, envelopes: Sequence[Envelope]) -> None:
        counts: dict[tuple[str, str], int] = {}
        for envelope in envelopes:
            failure = envelope.failure
            key = (failure.step, failure.error_class) if failure else ("unknown", "unknown")
            counts[key] = counts.get(key, 0) + 1
        for (step, reason_class), count in counts.items():
            self.dead_lettered_total.labels(flow, step, reason_class).inc(count)

    def retried(self, flow: str, sink: str, envelopes: Sequence[Envelope]) -> None:
        self.retries_total.labels(flow, sink).inc(len(envelopes))

    def parked(self, flow: str, sink: str, envelopes: Sequence[Envelope]) -> None:
        self.parked_total.labels(flow, sink).inc(len(envelopes))

    def rate_limit_wait(self, flow: str, sink: str, seconds: float) -> None:
        self.rate_limit_wait_total.labels(flow, sink).inc(seconds)

    def circuit_state(self, flow: str, sink: str, state: CircuitState) -> None:
        self.circuit.labels(flow, sink).set(CIRCUIT_VALUES[state])

    def inbox_depth(self, flow: str, depth: int) -> None:
        self.inbox.labels(flow).set(depth)

    def settled(self, flow: str, envelopes: Sequence[Envelope], seconds: float) -> None:
        self.batch_seconds.labels(flow).observe(seconds)

    def text(self) -> str:
        """The registry in the Prometheus text format (what ``/metrics`` answers)."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()


def serve_metrics(observer: MetricsObserver, port: int, host: str = "127.0.0.1") -> Any:
    """Serve ``observer``'s registry on ``http://host:port/metrics`` from a daemon thread.

    Returns the server; ``server.shutdown()`` stops it (the process exit does too).
    """
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=observer.registry)
    return server
