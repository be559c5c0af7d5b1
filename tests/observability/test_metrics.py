"""Prometheus metrics: /metrics counts equal the run's summary, in-process and from a real
``dovetail run --metrics-port`` process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import anyio
import httpx
from prometheus_client.parser import text_string_to_metric_families

from dovetail.config.loader import load_flow
from dovetail.core.envelope import Envelope
from dovetail.delivery.clock import FakeClock
from dovetail.errors import TransientError
from dovetail.observability.metrics import MetricsObserver, serve_metrics
from dovetail.runtime.pipeline import build_pipeline
from dovetail.runtime.runner import FlowRunner, RunSummary
from dovetail.store.sqlite import SqliteStore
from dovetail.testing.fakes import CaptureSink, ListSource
from tests.observability.flows_support import expected, write_project

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(port: int) -> Samples:
    """GET /metrics and index every sample by name and sorted labels."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of ``name`` over every label set that includes ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def assert_matches(samples: Samples, summary: RunSummary) -> None:
    flow = summary.flow
    assert value(samples, "dovetail_messages_received_total", flow=flow) == summary.received
    for sink, count in summary.delivered.items():
        assert value(samples, "dovetail_messages_delivered_total", flow=flow, sink=sink) == count
    assert total(samples, "dovetail_messages_filtered_total", flow=flow) == summary.filtered
    dead = total(samples, "dovetail_messages_dead_lettered_total", flow=flow)
    assert dead == summary.dead_lettered
    assert value(samples, "dovetail_inbox_depth", flow=flow) == 0


def test_metrics_endpoint_counts_equal_the_run_summary(project: Path) -> None:
    count = 40
    path = write_project(project, count)
    observer = MetricsObserver()
    port = free_port()
    server = serve_metrics(observer, port)

    async def main() -> RunSummary:
        store = SqliteStore(project / "s.db")
        await store.open()
        try:
            pipeline = build_pipeline(load_flow(path), store, once=True)
            return await FlowRunner(pipeline, observers=[observer]).run()
        finally:
            await store.close()

    try:
        summary = anyio.run(main)
        samples = scrape(port)
    finally:
        server.shutdown()
        server.server_close()
    delivered, filtered, dead = expected(count)
    assert summary.delivered == {"erp": delivered, "crm": delivered}
    assert (summary.filtered, summary.dead_lettered) == (filtered, dead)
    assert_matches(samples, summary)
    reasons = {
        dict(labels)["reason_class"]
        for (name, labels) in samples
        if name == "dovetail_messages_dead_lettered_total"
    }
    assert reasons == {"ValidationFailed"}
    batches = value(samples, "dovetail_step_batch_seconds_count", flow="orders", step="validate")
    assert batches == count / 4  # one observation per batch of 4
    assert value(samples, "dovetail_sink_batch_seconds_count", flow="orders", sink="erp") > 0


class FlakySink(CaptureSink):
    """Fails the first write of each message transiently (honouring a Retry-After)."""

    def __init__(self) -> None:
        super().__init__("partner")
        self.seen: set[str] = set()

    async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
        fresh = [e for e in batch if e.id not in self.seen]
        self.seen.update(e.id for e in batch)
        if fresh:
            return [TransientError("502 from partner")] * len(batch)
        return await super().write(batch)


def test_retries_parking_and_circuit_state_are_counted(project: Path) -> None:
    flow_text = (
        "flow: flaky\nsource: {file: {path: in/*.jsonl}}\nsink: {capture: {}}\n"
        "delivery: {retry: {attempts: 3, initial: 1ms, max: 2ms},"
        " circuit_breaker: {failures: 1, reset: 1ms}}\n"
    )
    path = project / "flows" / "flaky.yaml"
    path.write_text(flow_text.replace("capture: {}", "file: {path: out/x.jsonl}"), "utf-8")
    observer = MetricsObserver()
    sink = FlakySink()

    async def main() -> RunSummary:
        pipeline = build_pipeline(
            load_flow(path),
            None,
            once=True,
            clock=FakeClock(),
            source=ListSource([{"n": n} for n in range(5)]),
            sinks={"sink": sink},
        )
        return await FlowRunner(pipeline, observers=[observer]).run()

    summary = anyio.run(main)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(observer.text())
        for s in family.samples
    }
    assert summary.retries == 5 and summary.delivered == {"sink": 5}
    assert value(samples, "dovetail_delivery_retries_total", flow="flaky", sink="sink") == 5
    # opened by the failure, half-open for the probe, closed once it went through
    assert value(samples, "dovetail_circuit_state", flow="flaky", sink="sink") == 0
    assert value(samples, "dovetail_messages_delivered_total", flow="flaky", sink="sink") == 5


def test_dovetail_run_serves_metrics_matching_its_summary(project: Path) -> None:
    count = 24
    write_project(project, count)
    port = free_port()
    env = {**os.environ, "NO_COLOR": "1"}
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dovetail"),
            "run",
            "--json",
            "--metrics-port",
            str(port),
        ],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        samples: Samples = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                samples = scrape(port)
            except httpx.TransportError:
                samples = {}
            if value(samples, "dovetail_messages_received_total", flow="orders") == count and (
                value(samples, "dovetail_inbox_depth", flow="orders") == 0
            ):
                break
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert out, err.decode()
    (result,) = json.loads(out)
    summary = RunSummary(
        flow=result["flow"],
        received=result["received"],
        filtered=result["filtered"],
        dead_lettered=result["dead_lettered"],
    )
    summary.delivered.update(result["delivered"])
    assert summary.received == count
    assert_matches(samples, summary)
