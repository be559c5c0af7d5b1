"""``dovetail run``: run flows in the foreground until drained (``--once``) or stopped."""

from __future__ import annotations

import signal
import sys

import anyio
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from dovetail.api import open_store
from dovetail.cli import exit_codes
from dovetail.cli.render import console, print_json, table
from dovetail.config.loader import Project
from dovetail.config.model import Flow
from dovetail.runtime.runner import ProgressFn, RunSummary, first_error
from dovetail.runtime.supervisor import FlowSupervisor
from dovetail.store.base import Store


def print_summaries(summaries: list[RunSummary], *, as_json: bool) -> None:
    if as_json:
        print_json([s.as_dict() for s in summaries])
        return
    rows = []
    for s in summaries:
        delivered = ", ".join(f"{k}={v}" for k, v in sorted(s.delivered.items())) or "0"
        rows.append(
            [
                s.flow,
                s.received,
                delivered,
                s.duplicates,
                s.filtered,
                s.dead_lettered,
                s.retries,
                s.parked,
                f"{s.seconds:.2f}s",
            ]
        )
    table(
        None,
        [
            "flow",
            "received",
            "delivered",
            "duplicates",
            "filtered",
            "dead-lettered",
            "retries",
            "parked",
            "time",
        ],
        rows,
    )
    if any(s.parked for s in summaries):
        console.print(
            "parked messages wait in the store for their next attempt:"
            " `dovetail dlq parked` lists them; a running flow sends them when due"
        )
    for s in summaries:
        if s.error is not None:
            restarted = f" (restarted {s.restarts} time(s))" if s.restarts else ""
            console.print(f"flow {s.flow} failed{restarted}: {s.error}")
    reasons = [(s.flow, r, n) for s in summaries for r, n in s.reasons.most_common()]
    if reasons:
        table("dead-letter reasons", ["flow", "reason", "count"], reasons)


async def run_flows(
    project: Project, flows: list[Flow], *, once: bool, progress: bool
) -> list[RunSummary]:
    """Run ``flows`` concurrently on the project's store; SIGINT/SIGTERM drain and stop."""
    store = await open_store(project)
    runners: list[FlowSupervisor] = []
    summaries: list[RunSummary] = []
    bar = (
        Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True
        )
        if progress
        else None
    )
    tasks = {}
    if bar is not None:
        bar.start()
        tasks = {f.name: bar.add_task(f.name) for f in flows}

    def on_progress(summary: RunSummary) -> None:
        if bar is not None:
            bar.update(
                tasks[summary.flow],
                description=f"{summary.flow}: {summary.received} read,"
                f" {summary.delivered_total} delivered, {summary.dead_lettered} dead-lettered",
            )

    try:
        await _run_all(flows, store, once, on_progress, runners, summaries)
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    finally:
        if bar is not None:
            bar.stop()
        await store.close()
    order = {f.name: i for i, f in enumerate(flows)}
    return sorted(summaries, key=lambda s: order[s.flow])


async def _run_all(
    flows: list[Flow],
    store: Store,
    once: bool,
    on_progress: ProgressFn,
    runners: list[FlowSupervisor],
    summaries: list[RunSummary],
) -> None:
    """All flows in one task group, each under its supervisor (a crashed flow restarts or
    stops alone), with a signal watcher that drains them."""
    async with anyio.create_task_group() as group:

        async def watch_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    for runner in runners:
                        runner.stop()

        async def one(flow: Flow) -> None:
            supervisor = FlowSupervisor(flow, store=store, once=once, on_progress=on_progress)
            runners.append(supervisor)
            summaries.append(await supervisor.run())

        group.start_soon(watch_signals)
        async with anyio.create_task_group() as flows_group:
            for flow in flows:
                flows_group.start_soon(one, flow)
        group.cancel_scope.cancel()


def exit_code_for(summaries: list[RunSummary]) -> int:
    """1 when a flow failed (even if restarted), else 3 when messages were dead-lettered."""
    if any(s.error is not None for s in summaries):
        return exit_codes.RUNTIME_FAILURE
    return exit_codes.SOME_FAILED if any(s.dead_lettered for s in summaries) else exit_codes.OK


def progress_wanted(once: bool, as_json: bool) -> bool:
    return once and not as_json and sys.stderr.isatty()
