"""The progress display of ``dovetail run --once``: one line per flow, on stderr.

Every flow shows its counts; a flow whose source knows the size of its input (a
``MeasuredSource``: the ``file`` source knows the sizes of the files it found) also shows the
bytes read of that size, a bar, the percentage and the time remaining.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

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
from dovetail.runtime.runner import RunSummary
from dovetail.safety.limits import format_bytes

SourceOf = Callable[[str], Source | None]
"""The source now reading a flow (by flow name), or None."""


def _no_source(_flow: str) -> Source | None:
    return None


class RunProgress:
    """A live progress line per flow; ``update`` is the runner's ``on_progress`` callback."""

    def __init__(
        self, flows: Iterable[str], console: Console, source_of: SourceOf = _no_source
    ) -> None:
        """One line per flow in ``flows``, drawn on ``console``; ``source_of`` finds the
        source a flow is reading from (its size and bytes read are shown when it knows them)."""
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
        self._source_of = source_of
        self._tasks: dict[str, TaskID] = {
            name: self.bar.add_task(name, total=None, size="", counts="") for name in flows
        }

    def start(self) -> None:
        """Show the display."""
        self.bar.start()

    def stop(self) -> None:
        """Remove the display (the summary table follows)."""
        self.bar.stop()

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
