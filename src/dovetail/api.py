"""The Python API: everything the command line does, callable from a user's own program.

import dovetail
flow = dovetail.load_flow("flows/orders-to-erp.yaml")
summary = dovetail.run_flow(flow, once=True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from dovetail.config.loader import Project, load_flow, load_project
from dovetail.config.model import Flow
from dovetail.core.component import Sink, Source
from dovetail.delivery.clock import Clock
from dovetail.delivery.replay import ReplaySource, replay_events, replayable
from dovetail.runtime.pipeline import build_pipeline
from dovetail.runtime.runner import FlowRunner, ProgressFn, RunSummary
from dovetail.store.base import BatchRecord, DeadLetter, DeadLetterQuery, Store
from dovetail.store.factory import store_from_url


async def open_store(project: Project) -> Store:
    """Open the project's state store (migrating it when needed)."""
    store = store_from_url(project.store_url())
    await store.open()
    return store


async def run_flow_async(
    flow: Flow,
    *,
    store: Store,
    once: bool = True,
    source: Source | None = None,
    sinks: dict[str, Sink] | None = None,
    clock: Clock | None = None,
    on_progress: ProgressFn | None = None,
    runner_ready: list[FlowRunner] | None = None,
) -> RunSummary:
    """Run one flow on an open store; ``source``/``sinks`` replace the declared ones."""
    pipeline = build_pipeline(flow, store, once=once, clock=clock, source=source, sinks=sinks)
    runner = FlowRunner(pipeline, on_progress=on_progress)
    if runner_ready is not None:
        runner_ready.append(runner)
    return await runner.run()


def run_flow(
    flow: Flow | str | Path, *, once: bool = True, environment: str | None = None
) -> RunSummary:
    """Load (if given a path) and run one flow against the project's store."""
    loaded = flow if isinstance(flow, Flow) else load_flow(Path(flow), environment=environment)
    project = load_project(loaded.project_dir)

    async def main() -> RunSummary:
        store = await open_store(project)
        try:
            return await run_flow_async(loaded, store=store, once=once)
        finally:
            await store.close()

    return anyio.run(main)


@dataclass
class ReplayReport:
    """What a replay did, per flow."""

    selected: int = 0
    skipped_source_rejects: int = 0
    unknown_flows: list[str] = field(default_factory=list)
    """Flows that have dead letters but no flow file any more: their entries stay open."""
    summaries: list[RunSummary] = field(default_factory=list)


async def replay_async(
    project: Project,
    store: Store,
    query: DeadLetterQuery,
    *,
    flows: Sequence[Flow] | None = None,
    environment: str | None = None,
) -> ReplayReport:
    """Re-drive the open dead letters matching ``query`` through each flow's current version."""
    report = ReplayReport()
    letters = await store.dead_letters(query)
    report.selected = len(letters)
    by_flow: dict[str, list[DeadLetter]] = {}
    for letter in letters:
        if not replayable(letter):
            report.skipped_source_rejects += 1
            continue
        by_flow.setdefault(letter.flow, []).append(letter)
    known = {f.name: f for f in flows or []}
    if flows is None:
        for path in project.flow_paths():
            flow = load_flow(path, project, environment=environment)
            known[flow.name] = flow
    for name, chosen in sorted(by_flow.items()):
        target = known.get(name)
        if target is None:
            report.unknown_flows.append(name)
            continue
        await store.settle_batch(BatchRecord(flow=name, journal=replay_events(chosen)))
        source = ReplaySource(chosen, batch_size=target.spec.runtime.batch_size)
        report.summaries.append(await run_flow_async(target, store=store, once=True, source=source))
    return report
