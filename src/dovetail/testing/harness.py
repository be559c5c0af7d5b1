"""Run flows offline: captured sinks, a throw-away store, a fake clock (no real waiting)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from dovetail.api import run_flow_async
from dovetail.config.model import Flow
from dovetail.core.component import BuildContext, Source
from dovetail.delivery.clock import FakeClock
from dovetail.runtime.runner import RunSummary
from dovetail.store.base import DeadLetter, DeadLetterQuery
from dovetail.store.sqlite import SqliteStore
from dovetail.testing.cases import FlowCase
from dovetail.testing.fakes import CaptureSink, ListSource


@dataclass
class OfflineRun:
    """The outcome of an offline run: what each sink received and what was dead-lettered."""

    summary: RunSummary
    delivered: dict[str, list[Any]]
    dead_letters: list[DeadLetter]


@dataclass
class CaseResult:
    """A test case's verdict with the reasons it failed, if it did."""

    case: FlowCase
    passed: bool
    failures: list[str] = field(default_factory=list)
    run: OfflineRun | None = None
    seconds: float = 0.0


def _file_source(flow: Flow, input_file: Path, store: SqliteStore) -> Source:
    """The flow's own file source, pointed at ``input_file`` and leaving it where it is."""
    ref = flow.source
    relative = str(input_file.resolve().relative_to(flow.project_dir.resolve()))
    updates: dict[str, Any] = {"path": relative}
    if "after" in type(ref.config).model_fields:
        updates["after"] = None
    config = ref.config.model_copy(update=updates)
    context = BuildContext(
        flow=flow.name,
        flow_version=flow.version,
        project_dir=flow.project_dir,
        store=store,
        once=True,
        options={"batch_size": flow.spec.runtime.batch_size},
    )
    source: Source = ref.spec.factory(config, context)
    return source


async def run_offline(
    flow: Flow, *, messages: list[Any] | None = None, input_file: Path | None = None
) -> OfflineRun:
    """Push ``messages`` (or a file through the flow's own source) with every sink captured."""
    captured = {name: CaptureSink(name) for name in flow.sinks}
    with tempfile.TemporaryDirectory(prefix="dovetail-test-") as tmp:
        store = SqliteStore(Path(tmp) / "state.db")
        await store.open()
        try:
            source: Source
            if input_file is not None:
                source = _file_source(flow, input_file, store)
            else:
                source = ListSource(messages or [], batch_size=flow.spec.runtime.batch_size)
            summary = await run_flow_async(
                flow, store=store, once=True, source=source, sinks=dict(captured), clock=FakeClock()
            )
            letters = await store.dead_letters(DeadLetterQuery(flow=flow.name, status=None))
        finally:
            await store.close()
    return OfflineRun(
        summary=summary,
        delivered={name: sink.received for name, sink in captured.items()},
        dead_letters=letters,
    )


def _normal(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value, default=str))


async def run_case(flow: Flow, case: FlowCase) -> CaseResult:
    """Run one case and compare what came out with what it expects."""
    spec = case.spec
    if spec.input.file is not None:
        run = await run_offline(flow, input_file=case.path.parent / spec.input.file)
    else:
        items = spec.input.messages if spec.input.messages is not None else [spec.input.message]
        run = await run_offline(flow, messages=list(items))
    failures: list[str] = []
    expect = spec.expect
    for sink, payloads in (expect.delivered or {}).items():
        if sink not in run.delivered:
            failures.append(f"expected deliveries to unknown sink {sink!r}")
            continue
        got = _normal(run.delivered[sink])
        want = _normal(payloads)
        if got != want:
            failures.append(_difference(sink, want, got))
    for sink, count in (expect.delivered_count or {}).items():
        got_count = len(run.delivered.get(sink, []))
        if got_count != count:
            failures.append(f"{sink}: expected {count} delivered, got {got_count}")
    if expect.dead_letters is not None:
        failures.extend(_compare_dead_letters(expect.dead_letters, run.dead_letters))
    if expect.filtered is not None and run.summary.filtered != expect.filtered:
        failures.append(f"expected {expect.filtered} filtered, got {run.summary.filtered}")
    return CaseResult(
        case=case, passed=not failures, failures=failures, run=run, seconds=run.summary.seconds
    )


def _difference(sink: str, want: list[Any], got: list[Any]) -> str:
    if len(want) != len(got):
        return f"{sink}: expected {len(want)} messages, got {len(got)}"
    for index, (w, g) in enumerate(zip(want, got, strict=True)):
        if w != g:
            if isinstance(w, dict) and isinstance(g, dict):
                keys = sorted({k for k in w.keys() | g.keys() if w.get(k) != g.get(k)})
                return f"{sink}[{index}]: fields differ: {', '.join(keys)}"
            return f"{sink}[{index}]: payload differs"
    return f"{sink}: payloads differ"


def _compare_dead_letters(expected: list[Any], letters: list[DeadLetter]) -> list[str]:
    failures: list[str] = []
    remaining = list(letters)
    for want in expected:
        match = next(
            (
                letter
                for letter in remaining
                if (want.step is None or letter.step == want.step)
                and (want.reason is None or want.reason in letter.reason)
            ),
            None,
        )
        if match is None:
            failures.append(f"expected a dead letter (step={want.step}, reason~{want.reason!r})")
        else:
            remaining.remove(match)
    for extra in remaining:
        failures.append(f"unexpected dead letter at {extra.step}: {extra.reason}")
    return failures
