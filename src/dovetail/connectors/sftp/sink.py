"""``sftp`` sink: upload one file per message, or one file per batch, atomically.

Every file is uploaded under a hidden temporary name in its target folder and then renamed
to its final name (``posix-rename``, which replaces atomically), so a partner polling the
folder never sees half a file under the final name, and writing the same name again (a
retry) leaves one complete file.
"""

from __future__ import annotations

import contextlib
import posixpath
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import anyio
from pydantic import Field, model_validator

from dovetail.config.fields import JsonataExpr
from dovetail.connectors.file import writers
from dovetail.connectors.sftp.connection import (
    SftpConnectError,
    SftpConnectionConfig,
    connect,
    remote_join,
    translate,
)
from dovetail.core.component import BuildContext
from dovetail.core.envelope import Envelope
from dovetail.errors import PermanentError, TransientError
from dovetail.mapping.jsonata import Expression, compile_expression
from dovetail.plugins.spec import ComponentSpec

if TYPE_CHECKING:
    import asyncssh

SftpFormat = Literal["json", "jsonl", "csv", "xml"]


class SftpSinkConfig(SftpConnectionConfig):
    filename: JsonataExpr
    """JSONata giving each file's name, relative to `folder` (sub-folders allowed, never
    `..`). `per_message`: evaluated over the payload (`"order-" & order_id & ".json"`).
    `per_batch`: evaluated over `{batch_id, timestamp, count, first}` where `first` is the
    first payload (`"orders-" & timestamp & "-" & batch_id & ".csv"`)."""
    mode: Literal["per_message", "per_batch"] = "per_message"
    """`per_message`: one file per message. `per_batch`: one file holding a whole batch."""
    format: SftpFormat = "json"
    """json, jsonl, csv or xml. `per_batch` takes jsonl, csv or json (an array)."""
    fieldnames: list[str] | None = None
    """CSV: the columns, in order. Default: the keys of the (first) message."""
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    """CSV: the field separator."""
    record: str = "record"
    """XML: the name of the root element of each document."""
    concurrency: int = Field(default=4, ge=1, le=64)
    """Uploads in flight at once on the one connection."""

    @model_validator(mode="after")
    def _format_fits_mode(self) -> SftpSinkConfig:
        if self.mode == "per_batch" and self.format == "xml":
            raise ValueError("format xml writes one document per message; use mode per_message")
        return self


class SftpSink:
    """Uploads files over one SFTP connection (re-established after a failure).

    ``write`` returns per message ``None`` once its file is renamed to its final name, a
    ``PermanentError`` when the payload cannot be written in the format, its file name is
    unusable or leaves ``folder``, or the server refuses permission, and a ``TransientError``
    when the connection or the server failed (the file is then retried whole).
    """

    name = "sftp"

    def __init__(self, config: SftpSinkConfig, context: BuildContext) -> None:
        self._config = config
        self._context = context
        self._folder = posixpath.normpath(config.folder)
        self._filename: Expression = compile_expression(config.filename)
        self._limiter = anyio.CapacityLimiter(config.concurrency)
        self._connect_lock = anyio.Lock()
        self._connection: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._posix_rename = True

    async def open(self) -> None:
        """Connect, checking the host key. Raises ``SftpConnectError`` when that fails."""
        await self._client()

    async def _client(self) -> asyncssh.SFTPClient:
        async with self._connect_lock:
            if self._sftp is None:
                self._connection, self._sftp = await connect(self._config, self._context)
            return self._sftp

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection = self._sftp = None

    async def close(self) -> None:
        """Close the connection."""
        self._disconnect()

    async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
        """Upload ``batch``; see the class docstring for the per-message results."""
        if not batch:
            return []
        if self._config.mode == "per_batch":
            return self._batch_results(batch, await self._write_batch(batch))
        results: list[BaseException | None] = [None] * len(batch)

        async def deliver(index: int, envelope: Envelope) -> None:
            async with self._limiter:
                results[index] = await self._write_message(envelope)

        async with anyio.create_task_group() as group:
            for index, envelope in enumerate(batch):
                group.start_soon(deliver, index, envelope)
        return results

    @staticmethod
    def _batch_results(
        batch: Sequence[Envelope], outcome: list[BaseException | None] | BaseException | None
    ) -> list[BaseException | None]:
        if isinstance(outcome, list):
            return outcome
        return [outcome] * len(batch)

    async def _write_message(self, envelope: Envelope) -> BaseException | None:
        payload = envelope.payload
        try:
            name = self._name(payload)
            data = self._encode([payload])
        except PermanentError as exc:
            return exc
        return await self._upload(name, data)

    async def _write_batch(
        self, batch: Sequence[Envelope]
    ) -> list[BaseException | None] | BaseException | None:
        results: list[BaseException | None] = [None] * len(batch)
        good: list[int] = []
        for index, envelope in enumerate(batch):
            try:
                self._encode([envelope.payload])  # a bad message must not sink the file
            except PermanentError as exc:
                results[index] = exc
            else:
                good.append(index)
        if not good:
            return results
        first = batch[good[0]]
        context = {
            "batch_id": first.id,
            "timestamp": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
            "count": len(good),
            "first": first.payload,
        }
        try:
            name = self._name(context)
            data = self._encode([batch[index].payload for index in good])
        except PermanentError as exc:
            return exc
        error = await self._upload(name, data)
        for index in good:
            results[index] = error
        return results

    def _name(self, value: Any) -> str:
        result = self._filename.evaluate(value)
        if isinstance(result, bool) or not isinstance(result, str | int | float) or result == "":
            raise PermanentError(
                f"filename {self._filename.source!r} gave {result!r}; expected a non-empty string"
            )
        return remote_join(self._folder, str(result), what="filename")

    def _encode(self, payloads: list[Any]) -> bytes:
        config = self._config
        if config.format == "xml":
            return writers.encode_xml(payloads[0], config.record)
        if config.format == "csv":
            fieldnames = config.fieldnames or writers.csv_fieldnames(payloads[0])
            rows = [
                writers.encode_csv_row(payload, fieldnames, delimiter=config.delimiter)
                for payload in payloads
            ]
            header = writers.encode_csv_header(fieldnames, delimiter=config.delimiter)
            return (header + "".join(rows)).encode("utf-8")
        if config.format == "jsonl":
            return b"".join(writers.encode_json(payload) for payload in payloads)
        if config.mode == "per_batch":
            return writers.encode_json(payloads, indent=True)
        return writers.encode_json(payloads[0], indent=True)

    async def _upload(self, target: str, data: bytes) -> BaseException | None:
        """Write ``data`` to a hidden temporary name beside ``target``, then rename it."""
        import asyncssh

        folder, base = posixpath.split(target)
        temporary = posixpath.join(folder, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            client = await self._client()
        except SftpConnectError as exc:
            return TransientError(exc.args[0])
        try:
            if folder and folder != ".":
                await client.makedirs(folder, exist_ok=True)
            async with client.open(temporary, "wb") as remote:
                await remote.write(data)
                await self._fsync(remote)
            await self._rename(client, temporary, target)
        except (asyncssh.Error, OSError) as exc:
            await self._remove_quietly(client, temporary)
            if not isinstance(exc, asyncssh.SFTPError):
                self._disconnect()  # the connection is gone: reconnect on the next write
            error: PermanentError | TransientError = translate(exc, f"cannot upload {target}")
            return error
        return None

    @staticmethod
    async def _fsync(remote: Any) -> None:
        import asyncssh

        # a server without fsync@openssh.com: its close() is the durability point
        with contextlib.suppress(asyncssh.SFTPOpUnsupported):
            await remote.fsync()

    async def _rename(self, client: asyncssh.SFTPClient, source: str, target: str) -> None:
        import asyncssh

        if self._posix_rename:
            try:
                await client.posix_rename(source, target)
                return
            except asyncssh.SFTPOpUnsupported:
                self._posix_rename = False
        # plain SFTP rename refuses to overwrite: replace the old file (not atomic)
        if await client.exists(target):
            await client.remove(target)
        await client.rename(source, target)

    async def _remove_quietly(self, client: asyncssh.SFTPClient, path: str) -> None:
        import asyncssh

        try:
            with anyio.fail_after(5):
                await client.remove(path)
        except (asyncssh.Error, OSError, TimeoutError):
            pass


SPEC = ComponentSpec(
    kind="sink",
    name="sftp",
    config=SftpSinkConfig,
    factory=lambda config, context: SftpSink(config, context),
    summary="Upload messages to an SFTP server, one file per message or per batch, atomically.",
    description=(
        "Writes each message (`mode: per_message`) or each batch (`mode: per_batch`) as one"
        " file under the remote `folder`, named by the JSONata expression `filename`. Each file"
        " is uploaded under a hidden temporary name (`.name.<random>.tmp`) in its target folder,"
        " flushed (`fsync` where the server offers it) and then renamed to its final name with"
        " the atomic `posix-rename` extension, so a reader never sees a partial file under the"
        " final name and re-writing a name after a retry leaves one complete file. Servers"
        " without `posix-rename` get a remove-then-rename, which is not atomic.\n\n"
        "Formats are those of the `file` sink: json (indented; an array in `per_batch`),"
        " jsonl, csv (header row first) and xml (`per_message` only). A payload that cannot"
        " be written in the format, a file name that leaves `folder`, or a permission refusal"
        " is dead-lettered; lost connections and server failures are retried.\n\n"
        "The host key is always checked and login uses `password` or `private_key`, as for"
        " the `sftp` source. In `per_batch` mode, name files with `batch_id` (the id of the"
        " batch's first message) so a retried batch rewrites the same file."
    ),
    examples=[
        "sftp:\n  host: sftp.erp.example\n  username: dovetail\n"
        "  private_key: ${secret:ERP_SFTP_KEY}\n  known_hosts: config/known_hosts\n"
        '  folder: /incoming\n  filename: \'"order-" & order_id & ".json"\'',
        "sftp:\n  host: sftp.erp.example\n  username: dovetail\n"
        "  password: ${secret:ERP_SFTP_PASSWORD}\n  host_key: ssh-ed25519 AAAAC3NzaC1lZDI1...\n"
        "  mode: per_batch\n  format: csv\n"
        '  filename: \'"orders/orders-" & timestamp & "-" & batch_id & ".csv"\'',
    ],
    extra="sftp",
    modules=("asyncssh",),
)
