"""Per-file progress of the file source: settlement watermark, checkpoint, final move.

A file's records are numbered from 0 in the order they are read. Each record's ack settles
its number in an ``OrderedAcker``; the checkpoint stores the contiguous settled prefix
(``records``) with the file's size and mtime, so a restart skips exactly what was settled and
notices a file that changed. When every record is settled the file is *finished*: moved to
its archive or error folder, or (without one) kept with a ``done`` checkpoint.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from dovetail.connectors.file.formats import Record
from dovetail.core.ack import OrderedAcker, Settlement
from dovetail.core.component import ReadProgress
from dovetail.core.envelope import Envelope, SourcePosition
from dovetail.core.steps import mark_failed
from dovetail.errors import PayloadRejected


@dataclass(eq=False, slots=True)
class FileProgress:
    """Read and settlement progress of one file picked up by the source."""

    path: Path
    ref: str
    size: int
    mtime_ns: int
    acker: OrderedAcker = field(default_factory=OrderedAcker)
    total: int | None = None
    """How many records the file holds; None while it is still being read."""
    failed: bool = False
    """The file could not be read completely (it goes to the error folder)."""
    dirty: bool = False
    """The watermark moved since the last checkpoint write."""

    @property
    def key(self) -> str:
        """The checkpoint key: ``file:<path relative to the project>``."""
        return checkpoint_key(self.ref)

    @property
    def complete(self) -> bool:
        """Every record was read and settled."""
        return self.total is not None and self.acker.watermark >= self.total

    def checkpoint(self, *, done: bool = False) -> dict[str, Any]:
        """The checkpoint value to persist now."""
        return {
            "records": self.acker.watermark,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "done": done,
            "failed": self.failed,
        }


class ReadMeter:
    """Bytes read of the files a file source found, for progress displays.

    ``plan`` adds the sizes of the files a scan found; ``start`` and ``finish`` bracket the
    reading of one of them; ``opened`` (called on the reader thread) hands over its stream,
    whose OS read position measures the file in progress (read-ahead puts it at most one
    buffer ahead of the records parsed).
    """

    __slots__ = ("_done", "_reported", "_size", "_stream", "total")

    def __init__(self) -> None:
        self.total = 0
        self._reported = 0
        self._done = 0
        self._size = 0
        self._stream: BinaryIO | None = None

    def plan(self, sizes: Iterable[int]) -> None:
        """Count files about to be read into the total."""
        self.total += sum(sizes)

    def start(self, size: int) -> None:
        """A file of ``size`` bytes is about to be read."""
        self._size = size
        self._stream = None

    def opened(self, stream: BinaryIO) -> None:
        """The file being read is open as ``stream``."""
        self._stream = stream

    def finish(self) -> None:
        """The file started last is read (or skipped): all of it counts as read."""
        self._done += self._size
        self._size = 0
        self._stream = None

    def progress(self) -> ReadProgress | None:
        """Bytes read of the total, never less than reported before; None before any file was
        found."""
        if not self.total:
            return None
        current = 0
        stream = self._stream
        if stream is not None:
            try:
                current = os.lseek(stream.fileno(), 0, os.SEEK_CUR)
            except (OSError, ValueError):  # closed meanwhile: finish() is about to count it
                current = 0
        # never backwards: the reader thread closes a file it has read before ``finish``
        # counts it, and a closed stream has no position to read
        self._reported = max(self._reported, min(self._done + min(current, self._size), self.total))
        return ReadProgress(self._reported, self.total)


def checkpoint_key(ref: str) -> str:
    """``file:`` plus the file's path relative to the project directory."""
    return "file:" + ref


def checkpoint_matches(checkpoint: dict[str, Any] | None, size: int, mtime_ns: int) -> bool:
    """True when ``checkpoint`` was written for this very file content (same size and mtime)."""
    return (
        checkpoint is not None
        and checkpoint.get("size") == size
        and checkpoint.get("mtime_ns") == mtime_ns
    )


class RecordAck:
    """The ack of one record: settles its number and flags the file for the next commit."""

    __slots__ = ("index", "progress")

    def __init__(self, progress: FileProgress, index: int) -> None:
        self.progress = progress
        self.index = index

    async def __call__(self) -> None:
        if self.progress.acker.settle_sync(self.index):
            self.progress.dirty = True


def take_records(records: Iterator[Record], count: int) -> list[Record]:
    """Up to ``count`` records from ``records`` (fewer at the end of the file)."""
    taken: list[Record] = []
    for record in records:
        taken.append(record)
        if len(taken) >= count:
            break
    return taken


def record_envelope(
    progress: FileProgress, index: int, record: Record, *, kind: str = "file"
) -> Envelope:
    """The envelope of record number ``index`` of a file; its ack settles that number.

    A poison record is marked failed at the ``source`` step (dead-lettered with its line and
    raw text); a fatal one carries ``{"file", "error"}`` as its payload.
    """
    envelope = Envelope(
        payload=record.payload,
        settlement=Settlement(RecordAck(progress, index)),
        position=SourcePosition(kind=kind, ref=progress.ref, offset=index, line=record.line),
    )
    if record.error is not None:
        if record.fatal:
            envelope.payload = {"file": progress.ref, "error": record.error}
        mark_failed(envelope, "source", PayloadRejected(record.error))
    return envelope


def move_file(path: Path, folder: Path) -> Path:
    """Move ``path`` into ``folder`` (created when missing) and return the new path.

    An existing file of the same name is never overwritten: the moved file gets a UTC
    timestamp (and, if needed, a counter) before its suffix.
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    if target.exists() or target.is_symlink():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = folder / f"{path.stem}.{stamp}{path.suffix}"
        counter = 1
        while target.exists() or target.is_symlink():
            target = folder / f"{path.stem}.{stamp}-{counter}{path.suffix}"
            counter += 1
    try:
        os.rename(path, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:  # another file system: copy, then delete
            raise
        shutil.move(path, target)
    return target
