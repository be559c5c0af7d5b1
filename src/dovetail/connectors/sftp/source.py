"""``sftp`` source: poll a remote folder, download each file and stream its records.

Each remote file matching the glob is downloaded whole to a local spool folder and read
with the ``file`` source's readers, so formats, limits and poison-record handling are the
same. Records are numbered per file; their acks settle an ``OrderedAcker``, ``commit()``
persists each file's contiguous settled prefix in the store (``sftp:<path>``), and a file
moves to its remote archive (or error) folder only once every record is settled. A restart
downloads an unchanged file again and skips exactly the settled prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import structlog

from dovetail.connectors.file.progress import (
    FileProgress,
    checkpoint_matches,
    record_envelope,
    take_records,
)
from dovetail.connectors.file.readers import read_records
from dovetail.connectors.sftp.connection import SftpConnectError, connect, describe, remote_join
from dovetail.connectors.sftp.source_config import SftpSourceConfig
from dovetail.core.ack import OrderedAcker
from dovetail.core.component import BuildContext, Emit
from dovetail.core.envelope import Envelope
from dovetail.plugins.spec import ComponentSpec
from dovetail.safety.paths import check_relative

if TYPE_CHECKING:
    import asyncssh

log = structlog.get_logger("dovetail.connectors.sftp")
T = TypeVar("T")
CHECKPOINT_INTERVAL = 1.0
"""Seconds between checkpoint writes of a file still being read (finished files: at once)."""


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """A remote file found by the glob: its path relative to ``folder``, size and mtime."""

    ref: str
    size: int
    mtime_ns: int


def checkpoint_key(ref: str) -> str:
    """``sftp:`` plus the file's path relative to the remote folder."""
    return "sftp:" + ref


class SftpSource:
    """Reads the remote files matching ``config.path``; see the module docstring for acks.

    In ``once`` mode ``run()`` returns after the files present at start are read, and a lost
    connection fails the run; otherwise the glob is polled every ``poll_interval`` and a lost
    connection is re-established at the next poll.
    """

    name = "sftp"

    def __init__(self, config: SftpSourceConfig, context: BuildContext) -> None:
        self._config = config
        self._context = context
        self._options = config.reader_options()
        self._batch_size = max(1, int(context.options.get("batch_size", 500)))
        self._folder = posixpath.normpath(config.folder)
        after = config.after
        self._move_to = self._remote(after.move_to if after else None, "after.move_to")
        self._error_to = self._remote(
            after.on_error_move_to if after else None, "after.on_error_move_to"
        )
        self._files: dict[str, FileProgress] = {}
        self._finished: dict[str, tuple[int, int]] = {}
        self._lock = asyncio.Lock()
        self._last_checkpoint = 0.0
        self._executor: ThreadPoolExecutor | None = None
        self._spool: Path | None = None
        self._connection: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None

    def _remote(self, relative: str | None, what: str) -> str | None:
        if relative is None:
            return None
        return remote_join(self._folder, relative.rstrip("/") or ".", what=what)

    async def open(self) -> None:
        """Connect (checking the host key) and prepare the local spool folder.

        Raises ``SftpConnectError`` when the server cannot be reached or is not trusted.
        """
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="dovetail-sftp-source")
        self._spool = Path(tempfile.mkdtemp(prefix="dovetail-sftp-"))
        await self._client()

    async def _client(self) -> asyncssh.SFTPClient:
        if self._sftp is None:
            self._connection, self._sftp = await connect(self._config, self._context)
        return self._sftp

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection = self._sftp = None

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        # One dedicated thread: lxml parsers must stay on the thread that created them.
        if self._executor is None:
            raise RuntimeError("the sftp source is not open")
        return await asyncio.wrap_future(self._executor.submit(function, *args))

    async def run(self, emit: Emit) -> None:
        """Emit batches of envelopes; return when the input is read (``once``) or cancelled."""
        import asyncssh

        while True:
            problem: BaseException | None = None
            batch: list[Envelope] = []
            try:
                found = await self._scan()
                for remote in found:
                    progress = await self._progress(remote)
                    if progress is None:
                        continue  # finished earlier, or only its final move is still due
                    local = await self._download(remote)
                    if local is not None:
                        batch = await self._read_file(progress, local, batch, emit)
            except (SftpConnectError, asyncssh.Error, OSError) as exc:
                problem = exc
            if batch:
                await emit(batch)
            await self.commit()
            if problem is not None:
                self._disconnect()
                if self._context.once:
                    raise SftpConnectError(f"SFTP transfer failed: {describe(problem)}")
                log.warning("sftp poll failed", flow=self._context.flow, error=describe(problem))
            if self._context.once:
                return
            await anyio.sleep(self._config.poll_interval)

    async def _scan(self) -> list[RemoteFile]:
        """Remote files matching the glob that are not in flight, finished or too new."""
        import asyncssh

        client = await self._client()
        try:
            names = await client.glob_sftpname(posixpath.join(self._folder, self._config.path))
        except asyncssh.SFTPNoSuchFile:
            return []  # no file matches (or the folder does not exist yet)
        found: list[RemoteFile] = []
        min_age_ns = 0 if self._context.once else int(self._config.min_age * 1e9)
        now_ns = time.time_ns()
        for name in sorted(names, key=lambda item: str(item.filename)):
            path = str(name.filename)
            ref = posixpath.relpath(posixpath.normpath(path), self._folder)
            if posixpath.basename(ref).startswith(".") or self._in_after_folder(path):
                continue  # hidden files are uploads in progress: never read half-way
            if ref.startswith("../") or ref == ".." or not self._relative(ref):
                continue
            attrs = name.attrs
            if attrs.permissions is None or not stat.S_ISREG(attrs.permissions):
                continue  # folders, and symlinks (which could point out of the folder)
            size = int(attrs.size or 0)
            mtime_ns = int(attrs.mtime_ns or (attrs.mtime or 0) * 1_000_000_000)
            if ref in self._files or self._finished.get(ref) == (size, mtime_ns):
                continue
            if min_age_ns and now_ns - mtime_ns < min_age_ns:
                continue
            found.append(RemoteFile(ref, size, mtime_ns))
        return found

    @staticmethod
    def _relative(ref: str) -> bool:
        try:
            check_relative(ref)
        except ValueError:
            return False
        return True

    def _in_after_folder(self, path: str) -> bool:
        path = posixpath.normpath(path)
        return any(
            folder is not None and (path == folder or path.startswith(folder + "/"))
            for folder in (self._move_to, self._error_to)
        )

    async def _download(self, remote: RemoteFile) -> Path | None:
        """Fetch ``remote`` into the spool folder; None when it vanished meanwhile."""
        import asyncssh

        assert self._spool is not None
        client = await self._client()
        local = self._spool / f"{len(self._files)}-{posixpath.basename(remote.ref)}"
        try:
            await client.get(posixpath.join(self._folder, remote.ref), local)
        except asyncssh.SFTPNoSuchFile:
            return None
        except BaseException:
            local.unlink(missing_ok=True)
            raise
        return local

    async def _progress(self, remote: RemoteFile) -> FileProgress | None:
        """Progress of ``remote`` resumed from its checkpoint; None when there is nothing to
        read (done, or settled and only waiting for its move, which ``commit`` retries)."""
        progress = FileProgress(Path(), remote.ref, remote.size, remote.mtime_ns)
        store = self._context.store
        checkpoint = None
        if store is not None:
            checkpoint = await store.get_checkpoint(self._context.flow, checkpoint_key(remote.ref))
        if not checkpoint_matches(checkpoint, progress.size, progress.mtime_ns):
            return progress
        assert checkpoint is not None
        progress.failed = bool(checkpoint.get("failed"))
        progress.acker = OrderedAcker(int(checkpoint.get("records", 0)))
        if not checkpoint.get("done"):
            return progress
        if (self._error_to if progress.failed else self._move_to) is None:
            self._finished[remote.ref] = (progress.size, progress.mtime_ns)
        else:
            progress.total = progress.acker.watermark  # the move is still due
            self._files[remote.ref] = progress
        return None

    async def _read_file(
        self, progress: FileProgress, local: Path, batch: list[Envelope], emit: Emit
    ) -> list[Envelope]:
        progress.path = local
        self._files[progress.ref] = progress
        skip = progress.acker.watermark
        records: Iterator[Any] = read_records(local, self._options)
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
                        batch.append(record_envelope(progress, index, record, kind="sftp"))
                    index += 1
                if len(batch) >= self._batch_size:
                    await emit(batch)
                    batch = []
        finally:
            if self._executor is not None:
                # queued behind a read still running on the reader thread, never awaited here
                with contextlib.suppress(RuntimeError):
                    self._executor.submit(_discard, records, local)
        progress.total = index
        if progress.failed:
            log.warning(
                "file could not be read completely", flow=self._context.flow, file=progress.ref
            )
        return batch

    async def commit(self, *, force: bool = False) -> None:
        """Persist the settled prefix of every file whose watermark moved and finish the files
        whose records are all settled (move them remotely, or mark them done)."""
        store, flow = self._context.store, self._context.flow
        async with self._lock:
            now = time.monotonic()
            due = force or now - self._last_checkpoint >= CHECKPOINT_INTERVAL
            for progress in list(self._files.values()):
                if progress.complete:
                    await self._finish(progress)
                elif progress.dirty and due:
                    progress.dirty = False
                    self._last_checkpoint = now
                    if store is not None:
                        key = checkpoint_key(progress.ref)
                        await store.put_checkpoint(flow, key, progress.checkpoint())

    async def _finish(self, progress: FileProgress) -> None:
        import asyncssh

        store, flow = self._context.store, self._context.flow
        key = checkpoint_key(progress.ref)
        folder = self._error_to if progress.failed else self._move_to
        if folder is None:
            if store is not None:
                await store.put_checkpoint(flow, key, progress.checkpoint(done=True))
            self._finished[progress.ref] = (progress.size, progress.mtime_ns)
            del self._files[progress.ref]
            return
        try:
            moved = await self._move(progress.ref, folder)
        except (SftpConnectError, asyncssh.Error, OSError) as exc:
            # settled but not moved: remembered as done, the move is tried at the next commit
            log.error("cannot move remote file", flow=flow, file=progress.ref, error=describe(exc))
            if store is not None:
                await store.put_checkpoint(flow, key, progress.checkpoint(done=True))
            return
        log.info("file finished", flow=flow, file=progress.ref, moved_to=moved)
        if store is not None:
            await store.delete_checkpoint(flow, key)
        del self._files[progress.ref]

    async def _move(self, ref: str, folder: str) -> str | None:
        """Rename the remote file into ``folder`` without overwriting; None if it is gone."""
        import asyncssh

        client = await self._client()
        source = posixpath.join(self._folder, ref)
        await client.makedirs(folder, exist_ok=True)
        base, suffix = posixpath.splitext(posixpath.basename(ref))
        target = posixpath.join(folder, base + suffix)
        if await client.exists(target):
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            target = posixpath.join(folder, f"{base}.{stamp}{suffix}")
        try:
            await client.rename(source, target)  # SFTP rename never overwrites
        except asyncssh.SFTPNoSuchFile:
            if await client.exists(source):
                raise
            return None  # moved or removed by someone else: nothing left to do
        return posixpath.relpath(target, self._folder)

    async def close(self) -> None:
        """Commit what is settled (final moves included), disconnect, remove the spool."""
        try:
            if self._executor is not None:
                with contextlib.suppress(SftpConnectError):
                    await self.commit(force=True)
        finally:
            self._disconnect()
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None
            if self._spool is not None:
                shutil.rmtree(self._spool, ignore_errors=True)
                self._spool = None


def _discard(records: Iterator[Any], local: Path) -> None:
    close = getattr(records, "close", None)
    if close is not None:
        close()
    local.unlink(missing_ok=True)


SPEC = ComponentSpec(
    kind="source",
    name="sftp",
    config=SftpSourceConfig,
    factory=lambda config, context: SftpSource(config, context),
    summary="Poll a remote SFTP folder and read records from the files matching a glob.",
    description=(
        "Lists the files matching `path` (a glob relative to the remote `folder`), downloads"
        " each one and reads it exactly like the `file` source: CSV, JSON, JSON Lines, XML or"
        " fixed-width, one message per record, malformed records dead-lettered with their"
        " line, limits enforced.\n\n"
        "Progress is checkpointed per remote file in the state store: a restart downloads an"
        " unchanged file (same size and modification time) again and skips the records"
        " already settled, so nothing is lost on a crash (records after the last checkpoint"
        " may be delivered again; declare an idempotency key). Only when every record of a"
        " file is settled does the file move to `after.move_to` on the server, or to"
        " `after.on_error_move_to` when it could not be read; without them it stays and is not"
        " read again unless it changes.\n\n"
        "The server's host key is always checked (`host_key`, `known_hosts`, or the user's"
        " `~/.ssh/known_hosts`); log in with `password` or `private_key`, best given as"
        " `${secret:...}`. Paths and folders can never leave `folder`; symbolic links and"
        " hidden files (uploads in progress) are skipped. Without `--once` the folder is polled"
        " every `poll_interval` and a lost connection is re-established at the next poll; with"
        " `--once` a lost connection fails the run."
    ),
    examples=[
        "sftp:\n  host: sftp.partner.example\n  username: dovetail\n"
        "  private_key: ${secret:PARTNER_SFTP_KEY}\n"
        "  host_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDq3...\n"
        "  folder: /outgoing\n  path: orders/*.csv\n"
        "  after: {move_to: archive/, on_error_move_to: error/}",
        "sftp:\n  host: ${env:SFTP_HOST}\n  username: ${env:SFTP_USER}\n"
        "  password: ${secret:SFTP_PASSWORD}\n  known_hosts: config/known_hosts\n"
        "  path: invoices/*.xml\n  format: xml\n  record: Invoice\n  poll_interval: 1m",
    ],
    extra="sftp",
    modules=("asyncssh",),
)
