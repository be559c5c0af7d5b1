"""Every runner and delivery log line names its flow, step, message and correlation id (and
attempt where one is made): retries, dead letters, parking, circuit changes, rate limits."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from dovetail.config.loader import load_flow
from dovetail.core.envelope import Envelope
from dovetail.delivery.clock import FakeClock
from dovetail.errors import TransientError
from dovetail.observability.logging import configure_logging
from dovetail.runtime.pipeline import build_pipeline
from dovetail.runtime.runner import FlowRunner, RunSummary
from dovetail.store.sqlite import SqliteStore
from dovetail.testing.fakes import CaptureSink, ListSource

MESSAGE_FIELDS = {"flow", "step", "message_id", "correlation_id", "attempt"}


class DownSink(CaptureSink):
    """A partner that is down: every write fails transiently, naming the customer's e-mail."""

    async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
        return [TransientError(f"503 for {e.payload['email']}") for e in batch]


def run(
    project: Path, delivery: str, sink: CaptureSink, *, declared: str = "file: {path: out/x.jsonl}"
) -> RunSummary:
    path = project / "flows" / "down.yaml"
    path.write_text(
        "flow: down\nsource: {file: {path: in/*.jsonl}}\n"
        f"sink: {{{declared}}}\n"
        f"delivery: {delivery}\nobservability: {{mask: [email], detect: false}}\n",
        encoding="utf-8",
    )
    items = [{"id": n, "email": f"c{n}@example.com"} for n in range(3)]

    async def main() -> RunSummary:
        store = SqliteStore(project / "s.db")
        await store.open()
        try:
            pipeline = build_pipeline(
                load_flow(path),
                store,
                once=True,
                clock=FakeClock(),
                source=ListSource(items),
                sinks={"sink": sink},
            )
            return await FlowRunner(pipeline).run()
        finally:
            await store.close()

    return anyio.run(main)


def lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_retry_circuit_and_dead_letter_lines_carry_the_message_fields(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("debug", json=True)
    summary = run(
        project,
        "{retry: {attempts: 3, initial: 1ms, max: 2ms, park_after: null},"
        " circuit_breaker: {failures: 2, reset: 1ms}}",
        DownSink("sink"),
    )
    assert summary.dead_lettered == 3
    logged = lines(capsys.readouterr().err)
    retries = [e for e in logged if e["event"] == "delivery failed; will retry"]
    dead = [e for e in logged if e["event"] == "message dead-lettered"]
    assert retries and len(dead) == 3
    for entry in retries + dead:
        assert entry.keys() >= MESSAGE_FIELDS, entry
        assert entry["flow"] == "down" and entry["step"] == "sink:sink"
        assert "example.com" not in json.dumps(entry)  # the masked field, even inside a reason
    assert {e["attempt"] for e in dead} == {3}
    assert sorted({e["attempt"] for e in retries}) == [1, 2]
    opened = [e for e in logged if e["event"].startswith("circuit opened")]
    closed_or_probing = [e for e in logged if e["event"].startswith("circuit half-open")]
    assert opened and closed_or_probing
    for entry in opened + closed_or_probing:
        assert entry["flow"] == "down" and entry["step"] == "sink:sink"
    assert all(e["flow"] == "down" for e in logged if e["event"].startswith("flow "))


def test_parked_and_rate_limit_lines_carry_the_flow_and_step(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("debug", json=True)
    summary = run(
        project,
        "{retry: {attempts: 5, initial: 60s, max: 60s, park_after: 1ms}}",
        DownSink("sink"),
        declared="http: {url: 'http://127.0.0.1:9/orders', rate_limit: 10/s}",
    )
    assert summary.parked == 3
    logged = lines(capsys.readouterr().err)
    parked = [e for e in logged if e["event"] == "message parked for a later attempt"]
    assert len(parked) == 3
    for entry in parked:
        assert entry.keys() >= MESSAGE_FIELDS | {"next_attempt_at"}
        assert entry["attempt"] == 1 and entry["step"] == "sink:sink"
        assert "example.com" not in json.dumps(entry)
    waits = [e for e in logged if e["event"] == "rate limit delayed writes"]
    assert waits  # 3 writes at once, one token per 100 ms
    for entry in waits:
        assert entry["flow"] == "down" and entry["step"] == "sink:sink"
