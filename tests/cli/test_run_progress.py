"""``dovetail run --once`` progress: a file source reports bytes read of the files' total size,
so the progress line has a total, a percentage and a time remaining."""

from __future__ import annotations

import io
import re
from pathlib import Path

import anyio
import pytest
from rich.console import Console

from dovetail.api import open_store, run_flow_async
from dovetail.cli.commands import run as run_command
from dovetail.cli.progress import RunProgress
from dovetail.config.loader import load_flow, load_project
from dovetail.core.component import MeasuredSource, ReadProgress
from dovetail.runtime.runner import FlowRunner, RunSummary
from dovetail.safety.limits import format_bytes

FLOW = """\
flow: orders
version: 1.0.0
source:
  file: {path: inbox/*.csv}
sink:
  file: {path: outbox/orders.jsonl}
runtime: {batch_size: 200}
"""


def _files(project: Path, count: int = 3, rows: int = 4000) -> int:
    (project / "flows" / "orders.yaml").write_text(FLOW)
    inbox = project / "inbox"
    inbox.mkdir()
    total = 0
    for number in range(count):
        path = inbox / f"orders-{number}.csv"
        lines = ["order_id,total,note"]
        lines += [f"{number}-{i},{i}.50,{'x' * 40}" for i in range(rows)]
        path.write_text("\n".join(lines) + "\n")
        total += path.stat().st_size
    return total


def test_the_file_source_reports_bytes_read_of_the_files_total(project: Path) -> None:
    size = _files(project)
    seen: list[ReadProgress | None] = []
    runners: list[FlowRunner] = []

    def on_progress(summary: RunSummary) -> None:
        source = runners[0].pipeline.source
        assert isinstance(source, MeasuredSource)
        seen.append(source.read_progress())

    flow = load_flow(project / "flows" / "orders.yaml")

    async def main() -> RunSummary:
        store = await open_store(load_project(project))
        try:
            return await run_flow_async(
                flow, store=store, once=True, on_progress=on_progress, runner_ready=runners
            )
        finally:
            await store.close()

    summary = anyio.run(main)

    assert summary.received == 12_000
    measured = [p for p in seen if p is not None]
    assert measured, "no progress was reported"
    assert {p.total for p in measured} == {size}
    done = [p.done for p in measured]
    assert done == sorted(done)
    assert any(0 < d < size for d in done), done
    final = runners[0].pipeline.source
    assert isinstance(final, MeasuredSource)
    assert final.read_progress() == ReadProgress(size, size)


def test_the_progress_line_shows_bytes_percentage_and_time_left(project: Path) -> None:
    size = _files(project)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200, color_system=None)
    runners: list[FlowRunner] = []
    display = RunProgress(["orders"], console, lambda _flow: runners[0].pipeline.source)
    frames: list[str] = []

    def on_progress(summary: RunSummary) -> None:
        display.update(summary)
        with console.capture() as capture:
            console.print(display.bar.get_renderable())
        frames.append(capture.get())

    flow = load_flow(project / "flows" / "orders.yaml")

    async def main() -> RunSummary:
        store = await open_store(load_project(project))
        try:
            return await run_flow_async(
                flow, store=store, once=True, on_progress=on_progress, runner_ready=runners
            )
        finally:
            await store.close()

    anyio.run(main)

    percentages = [int(m) for frame in frames for m in re.findall(r"(\d+)%", frame)]
    assert any(0 < p < 100 for p in percentages), frames
    assert percentages[-1] == 100
    assert f"of {format_bytes(size)}" in frames[-1]
    assert any(re.search(r" \d+:\d\d:\d\d ", frame) for frame in frames)  # time remaining


def test_a_source_without_a_size_shows_counts_only() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200, color_system=None)
    display = RunProgress(["hooks"], console)
    display.update(RunSummary(flow="hooks", received=3))
    with console.capture() as capture:
        console.print(display.bar.get_renderable())
    frame = capture.get()
    assert "hooks" in frame
    assert "3 read, 0 delivered, 0 dead-lettered" in frame
    assert "%" not in frame


def test_dovetail_run_once_draws_the_measured_progress_line(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = _files(project, count=1)
    out = io.StringIO()
    terminal = Console(file=out, force_terminal=True, width=200, color_system=None)
    monkeypatch.setattr(run_command, "err_console", terminal)
    flows = [load_flow(project / "flows" / "orders.yaml")]

    summaries = anyio.run(
        lambda: run_command.run_flows(load_project(project), flows, once=True, progress=True)
    )

    assert summaries[0].received == 4000
    drawn = out.getvalue()
    assert "100%" in drawn
    assert f"{format_bytes(size)} of {format_bytes(size)}" in drawn
