"""``dovetail kpi``: success rate, DLQ depth, retries, mean time to replay and latency per flow.

Exit codes: 0 the report was made (an empty store gives zeros); 1 the store could not be
opened; 2 a bad ``--since``/``--until``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import anyio
import typer

from dovetail.api import open_store
from dovetail.cli import exit_codes
from dovetail.cli.commands.project import current_project
from dovetail.cli.render import console, fail, print_json, table
from dovetail.errors import DovetailError
from dovetail.observability.kpi import (
    DEFAULT_WINDOW,
    FlowKpis,
    KpiReport,
    collect_kpis,
    parse_moment,
)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 10_000:
        return f"{value / 1000:.1f} s"
    return f"{value:.0f} ms"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 3600:
        return f"{value / 3600:.1f} h"
    if value >= 60:
        return f"{value / 60:.1f} min"
    return f"{value:.1f} s"


def _name(kpis: FlowKpis) -> str:
    return "all flows" if kpis.flow == "*" else kpis.flow


def _counts(kpis: FlowKpis) -> list[str]:
    return [
        _name(kpis),
        str(kpis.messages),
        _rate(kpis.success_rate),
        str(kpis.dead_lettered),
        str(kpis.dlq_depth),
        f"{kpis.parked} ({kpis.parked_now})",
        str(kpis.retries),
        str(kpis.token_renewals),
    ]


def _timing(kpis: FlowKpis) -> list[str]:
    latency = kpis.latency_ms
    return [
        _name(kpis),
        str(kpis.replayed),
        _seconds(kpis.mean_time_to_replay_s),
        _ms(latency.get("p50")),
        _ms(latency.get("p95")),
        _ms(latency.get("p99")),
        _ms(latency.get("mean")),
    ]


def print_report(report: KpiReport) -> None:
    """Two tables, one row per flow (and a total when there are several): what happened to
    the messages, then how long it took."""
    shown = list(report.flows)
    if len(shown) != 1:
        shown.append(report.total)
    since, until = (t.isoformat(timespec="seconds") for t in (report.since, report.until))
    table(
        f"{since} to {until}",
        [
            "flow",
            "messages",
            "success",
            "dead-lettered",
            "DLQ depth",
            "parked (now)",
            "retries",
            "token renewals",
        ],
        [_counts(kpis) for kpis in shown],
    )
    table(
        None,
        ["flow", "replayed", "mean time to replay", "p50", "p95", "p99", "mean latency"],
        [_timing(kpis) for kpis in shown],
    )


def kpi(
    flow: Annotated[str | None, typer.Option("--flow", help="Only this flow.")] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Window start: a duration back from now (24h, 30m, 7d) or ISO-8601."),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Window end: a duration back from now or ISO-8601.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Success rate, dead letters and DLQ depth, retries, mean time to replay and latency
    percentiles per flow over a window (default: the last 24 hours)."""
    now = datetime.now(UTC)
    try:
        end = now if until is None else parse_moment(until, now)
        start = end - DEFAULT_WINDOW if since is None else parse_moment(since, now)
    except ValueError as exc:
        fail(str(exc))
        raise typer.Exit(exit_codes.USAGE) from None
    if start >= end:
        fail(f"--since ({start.isoformat()}) must be before --until ({end.isoformat()})")
        raise typer.Exit(exit_codes.USAGE)
    project = current_project()

    async def load() -> KpiReport:
        store = await open_store(project)
        try:
            return await collect_kpis(store, flow=flow, since=start, until=end)
        finally:
            await store.close()

    try:
        report = anyio.run(load)
    except DovetailError as exc:
        fail(str(exc))
        raise typer.Exit(exit_codes.RUNTIME_FAILURE) from None
    if as_json:
        print_json(report.as_dict())
    else:
        print_report(report)
        if not report.flows:
            console.print("no messages in this window")
