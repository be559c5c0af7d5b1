"""``file`` source: stream records out of the files matching a glob, with crash-safe checkpoints.

Files are read one at a time in name order, in constant memory, on one reader thread. Every
record becomes one envelope whose ack settles its number in the file's ``OrderedAcker``;
``commit()`` persists each file's contiguous settled prefix once per batch, and moves a file
to its archive (or error) folder once every record is settled. A restart after ``kill -9``
skips exactly the settled prefix of each unchanged file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import anyio
import structlog

from dovetail.connectors.file.formats import Record
from dovetail.connectors.file.progress import (
    FileProgress,
    ReadMeter,
    checkpoint_key,
    checkpoint_matches,
    move_file,
    record_envelope,
    take_records,
)
from dovetail.connectors.file.readers import read_records
from dovetail.connectors.file.source_config import FileSourceConfig
from dovetail.core.ack import OrderedAcker
from dovetail.core.component import BuildContext, Emit, ReadProgress
from dovetail.core.envelope import Envelope
from dovetail.plugins.spec import ComponentSpec
from dovetail.safety.paths import confine, glob_base, is_inside

log = structlog.get_logger("dovetail.connectors.file")
CHECKPOINT_INTERVAL = 1.0
"""Seconds between checkpoint writes of a file still being read (finished files: at once)."""

T = TypeVar("T")


class FileSource:
    """Reads the files matching ``config.path``; see the module docstring for the ack contract.

    In ``once`` mode ``run()`` returns after the files present at start are read; otherwise it
    keeps polling the glob every ``poll_interval``.
    """

    name = "file"

    def __init__(self, config: FileSourceConfig, context: BuildContext) -> None:
        self._config = config
        self._context = context
        self._root = context.project_dir
        self._options = config.reader_options()
        self._batch_size = max(1, int(context.options.get("batch_size", 500)))
        self._files: dict[str, FileProgress] = {}
        self._finished: dict[str, tuple[int, int]] = {}
        self._lock = asyncio.Lock()
        self._last_checkpoint = 0.0
        self._executor: ThreadPoolExecutor | None = None
        self._move_to: Path | None = None
        self._error_to: Path | None = None
        self._meter = ReadMeter()

    async def open(self) -> None:
        """Check that the glob and the after-folders stay inside the project directory.

        Raises ``PathEscapeError`` when one of them leaves it (``..`` or a symlink pointing out).
        """
        after = self._config.after
        confine(self._root, glob_base(self._config.path), what="path")
        if after is not None and after.move_to:
            self._move_to = confine(self._root, after.move_to, what="after.move_to")
        if after is not None and after.on_error_move_to:
            self._error_to = confine(
                self._root, after.on_error_move_to, what="after.on_error_move_to"
            )
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="dovetail-file-source")

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        # One dedicated thread: lxml parsers must stay on the thread that created them.
        if self._executor is None:
            raise RuntimeError("the file source is not open")
        return await asyncio.wrap_future(self._executor.submit(function, *args))

    async def run(self, emit: Emit) -> None:
        """Emit batches of envelopes; return when the input is read (``once``) or when cancelled."""
        while True:
            batch: list[Envelope] = []
            found = await self._in_thread(self._scan, set(self._files), dict(self._finished))
            self._meter.plan(stat.st_size for _, stat in found)
            for path, stat in found:
                self._meter.start(stat.st_size)
                try:
                    batch = await self._read_file(path, stat, batch, emit)
                finally:
                    self._meter.finish()
            if batch:
                await emit(batch)
            await self.commit()
            if self._context.once:
                return
            await anyio.sleep(self._config.poll_interval)

    def _scan(
        self, in_flight: set[str], finished: dict[str, tuple[int, int]]
    ) -> list[tuple[Path, os.stat_result]]:
        """Files matching the glob that are not in flight, not finished and old enough."""
        found: list[tuple[Path, os.stat_result]] = []
        min_age_ns = 0 if self._context.once else int(self._config.min_age * 1e9)
        now_ns = time.time_ns()
        for path in sorted(self._root.glob(self._config.path)):
            if path.name.startswith(".") or self._in_after_folder(path):
                continue  # hidden files are writers' temporary files: never read half-way
            try:
                stat = path.lstat()
                if path.is_symlink():
                    stat = path.stat() if is_inside(path, self._root) else stat
                if not path.is_file():
                    continue
            except OSError:
                continue
            ref = self._ref(path)
            if ref in in_flight or finished.get(ref) == (stat.st_size, stat.st_mtime_ns):
                continue
            if min_age_ns and now_ns - stat.st_mtime_ns < min_age_ns:
                continue
            found.append((path, stat))
        return found

    def _in_after_folder(self, path: Path) -> bool:
        return any(
            folder is not None and path.is_relative_to(folder)
            for folder in (self._move_to, self._error_to)
        )

    def _ref(self, path: Path) -> str:
        return path.relative_to(self._root).as_posix()

    async def _read_file(
        self, path: Path, stat: os.stat_result, batch: list[Envelope], emit: Emit
    ) -> list[Envelope]:
        ref = self._ref(path)
        progress = FileProgress(path, ref, stat.st_size, stat.st_mtime_ns)
        store = self._context.store
        checkpoint = None
        if store is not None:
            checkpoint = await store.get_checkpoint(self._context.flow, checkpoint_key(ref))
        if checkpoint_matches(checkpoint, progress.size, progress.mtime_ns):
            assert checkpoint is not None
            progress.failed = bool(checkpoint.get("failed"))
            if checkpoint.get("done"):
                if (self._error_to if progress.failed else self._move_to) is None:
                    self._finished[ref] = (progress.size, progress.mtime_ns)
                    return batch
                # finished, but the move did not happen: the next commit moves it
                progress.acker = OrderedAcker(int(checkpoint.get("records", 0)))
                progress.total = progress.acker.watermark
                self._files[ref] = progress
                return batch
            progress.acker = OrderedAcker(int(checkpoint.get("records", 0)))
        self._files[ref] = progress
        skip = progress.acker.watermark
        if not is_inside(path, self._root):
            record = Record(
                None, None, f"{ref} is a symlink to a path outside the project; refused", True
            )
            records: Iterator[Record] = iter([record])
        else:
            records = read_records(path, self._options, opened=self._meter.opened)
        index = 0
        try:
            while True:
                chunk = await self._in_thread(take_records, records, self._batch_size)
                if not chunk:
                    break
                for record in chunk:
                    if record.fatal:
                        progress.failed = True
                    if index >= skip:
                        batch.append(self._envelope(progress, index, record))
                    index += 1
                if len(batch) >= self._batch_size:
                    await emit(batch)
                    batch = []
        finally:
            close = getattr(records, "close", None)
            if close is not None and self._executor is not None:
                # queued behind a read still running on the reader thread, never awaited here
                with contextlib.suppress(RuntimeError):
                    self._executor.submit(close)
        progress.total = index
        if progress.failed:
            log.warning("file could not be read completely", flow=self._context.flow, file=ref)
        return batch

    def read_progress(self) -> ReadProgress | None:
        """Bytes read of the files found so far (their sizes when found); see ``MeasuredSource``."""
        return self._meter.progress()

    def _envelope(self, progress: FileProgress, index: int, record: Record) -> Envelope:
        return record_envelope(progress, index, record)

    async def commit(self, *, force: bool = False) -> None:
        """Persist the settled prefix of every file whose watermark moved (one write per file)
        and finish the files whose records are all settled (move them, or mark them done).

        Progress of a file still being read is written at most once per
        ``checkpoint_interval``: a crash then re-reads at most that much, which idempotency
        keys absorb, while the store is spared a transaction per batch.
        """
        async with self._lock:
            now = time.monotonic()
            due = force or now - self._last_checkpoint >= CHECKPOINT_INTERVAL
            for progress in list(self._files.values()):
                if progress.complete:
                    await self._finish(progress)
                elif progress.dirty and due:
                    progress.dirty = False
                    self._last_checkpoint = now
                    if self._context.store is not None:
                        await self._context.store.put_checkpoint(
                            self._context.flow, progress.key, progress.checkpoint()
                        )

    async def _finish(self, progress: FileProgress) -> None:
        store, flow = self._context.store, self._context.flow
        folder = self._error_to if progress.failed else self._move_to
        moved = None
        if folder is not None:
            try:
                moved = await self._in_thread(move_file, progress.path, folder)
            except OSError as exc:
                log.error("cannot move file", flow=flow, file=progress.ref, error=str(exc))
        if moved is not None:
            log.info("file finished", flow=flow, file=progress.ref, moved_to=self._ref(moved))
            if store is not None:
                await store.delete_checkpoint(flow, progress.key)
        else:
            if store is not None:
                await store.put_checkpoint(flow, progress.key, progress.checkpoint(done=True))
            self._finished[progress.ref] = (progress.size, progress.mtime_ns)
        del self._files[progress.ref]

    async def close(self) -> None:
        """Commit what is settled (final moves included) and stop the reader thread."""
        try:
            if self._executor is not None:
                await self.commit(force=True)
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None


SPEC = ComponentSpec(
    kind="source",
    name="file",
    config=FileSourceConfig,
    factory=lambda config, context: FileSource(config, context),
    summary="Read records from CSV, JSON, JSON Lines, XML or fixed-width files matching a glob.",
    description=(
        "Streams each file matching `path` (a glob relative to the project directory) in"
        " constant memory and emits one message per record: a CSV row, a JSON Lines line,"
        " an element of a JSON array, an XML element named `record`, a fixed-width line.\n\n"
        "Progress is checkpointed per file in the state store after every settled batch: a"
        " restart skips the records already settled, so nothing is lost on a crash (records"
        " after the last checkpoint may be delivered again; declare an idempotency key).\n\n"
        "A malformed record (a CSV row with the wrong number of fields, a JSON line that does"
        " not parse, a record over `max_record_bytes`, a line in the wrong encoding) is"
        " dead-lettered with its line number and raw text, and the file continues. A file"
        " that cannot be read (invalid JSON document, XML not well-formed) is dead-lettered"
        " as a whole and moved to `after.on_error_move_to`. When all records of a file are"
        " settled, the file moves to `after.move_to`; without it, the file stays and is not"
        " read again unless it changes.\n\n"
        "Without `--once` the source keeps watching the glob every `poll_interval`. Paths,"
        " after-folders and symlinks must stay inside the project directory. XML is parsed"
        " with entities and network access disabled."
    ),
    examples=[
        "file: {path: inbox/orders/*.csv, format: csv,"
        " after: {move_to: archive/, on_error_move_to: error/}}",
        "file: {path: inbox/*.csv, delimiter: ';', encoding: utf-8-sig}",
        "file: {path: inbox/orders/*.xml, format: xml, record: Order}",
        "file: {path: inbox/events/*.jsonl, poll_interval: 10s, max_record_bytes: 256KiB}",
        "file: {path: inbox/legacy/*.txt, format: fixed,"
        " columns: [{name: id, width: 8}, {name: name, width: 30}]}",
    ],
    shorthand="path",
)
