"""The progress display of ``dovetail run --once``: one line per flow, on stderr.

Every flow shows its counts; a flow whose source knows the size of its input (the ``file``
source: the sizes of the files it found) also shows the bytes read of that size, a bar, the
percentage and the time remaining.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Column

from dovetail.core.component import MeasuredSource, Source
from dovetail.runtime.runner import FlowRunner, RunSummary
from dovetail.safety.limits import format_bytes


class RunProgress:
    """A live progress line per flow; ``update`` is the runner's ``on_progress`` callback."""

    def __init__(self, flows: Iterable[str], runners: Sequence[FlowRunner], console: Console):
        # the counts come last and wrap on a narrow terminal, so the bar and ETA stay whole
        self.bar = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(bar_width=20),
            TaskProgressColumn(),
            TextColumn("{task.fields[size]}"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[counts]}", table_column=Column(no_wrap=False)),
            console=console,
            transient=True,
        )
        self._runners = runners
        self._tasks: dict[str, TaskID] = {
            name: self.bar.add_task(name, total=None, size="", counts="") for name in flows
        }

    def start(self) -> None:
        """Show the display."""
        self.bar.start()

    def stop(self) -> None:
        """Remove the display (the summary table follows)."""
        self.bar.stop()

    def _source_of(self, flow: str) -> Source | None:
        for runner in self._runners:
            if runner.flow.name == flow:
                return runner.pipeline.source
        return None

    def update(self, summary: RunSummary) -> None:
        """Show ``summary``'s counts and, when its source is measured, the bytes read."""
        counts = (
            f"{summary.received} read, {summary.delivered_total} delivered,"
            f" {summary.dead_lettered} dead-lettered"
        )
        source = self._source_of(summary.flow)
        read = source.read_progress() if isinstance(source, MeasuredSource) else None
        task = self._tasks[summary.flow]
        if read is None:
            self.bar.update(task, counts=counts)
            return
        size = f"{format_bytes(read.done)} of {format_bytes(read.total)}"
        self.bar.update(task, counts=counts, size=size, completed=read.done, total=read.total)
