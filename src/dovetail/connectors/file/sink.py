"""``file`` sink: append messages to one file, or write one file per message atomically.

``append`` mode writes each batch to the end of one file (JSON Lines or CSV) and returns only
after ``flush`` + ``fsync``. ``per_message`` mode names a file per message with a JSONata
expression and writes it through a temporary file in the same folder, ``fsync`` and
``os.replace``, so a reader never sees half a file and rewriting the same name is idempotent.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import errno
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from dovetail.connectors.file import writers
from dovetail.connectors.file.sink_config import FileSinkConfig
from dovetail.core.component import BuildContext
from dovetail.core.envelope import Envelope
from dovetail.errors import PermanentError, TransientError
from dovetail.mapping.jsonata import Expression, compile_expression
from dovetail.plugins.spec import ComponentSpec
from dovetail.safety.paths import check_file_name, confine


def read_csv_header(path: Path, encoding: str, delimiter: str, quotechar: str) -> list[str] | None:
    """The column names in the first line of an existing CSV file; None when there is none
    (missing, empty or unreadable: the first write then reports the problem)."""
    if codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"
    try:
        with path.open("r", encoding=encoding, newline="") as stream:
            first = next(csv.reader(stream, delimiter=delimiter, quotechar=quotechar), None)
    except (OSError, UnicodeError, csv.Error):
        return None
    return first or None


def write_atomically(target: Path, data: bytes, *, fsync: bool = True) -> None:
    """Write ``target`` via a temporary file in its folder and ``os.replace``.

    The temporary file is created with the process umask (like any new file) and removed if
    anything fails. Raises ``OSError``.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            if fsync:
                os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if fsync:
        sync_folder(target.parent)


def sync_folder(folder: Path) -> None:
    """``fsync`` a folder so a rename in it survives a power cut (no-op where unsupported)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


class FileSink:
    """Writes messages to files under the project directory.

    ``write`` returns per message ``None`` once the bytes are on disk (after ``fsync``), a
    ``PermanentError`` when the payload cannot be written in the format or names a file
    outside the folder, or a ``TransientError`` when the file system failed.
    """

    name = "file"

    def __init__(self, config: FileSinkConfig, context: BuildContext) -> None:
        self._config = config
        self._root = context.project_dir
        self._format = config.effective_format
        self._mode = config.effective_mode
        # utf-8-sig: one byte order mark at the start of each file, not one per record
        signed = codecs.lookup(config.encoding).name == "utf-8-sig"
        self._bom = codecs.BOM_UTF8 if signed else b""
        self._encoding = "utf-8" if signed else config.encoding
        self._utf8 = codecs.lookup(self._encoding).name == "utf-8"
        self._append_lock = anyio.Lock()  # concurrent batches must not interleave in one file
        self._delimiter = config.delimiter or ","
        self._quotechar = config.quotechar or '"'
        self._fieldnames: list[str] | None = list(config.fieldnames) if config.fieldnames else None
        self._filename: Expression | None = (
            compile_expression(config.filename) if config.filename is not None else None
        )
        self._target: Path | None = None

    async def open(self) -> None:
        """Check that the path stays inside the project and create its folder.

        Raises ``PathEscapeError`` when the path leaves the project directory.
        """
        self._target = confine(self._root, self._config.path, what="path")
        folder = self._target if self._mode == "per_message" else self._target.parent
        await anyio.to_thread.run_sync(lambda: folder.mkdir(parents=True, exist_ok=True))
        if self._format == "csv" and self._mode == "append" and self._fieldnames is None:
            self._fieldnames = await anyio.to_thread.run_sync(
                read_csv_header, self._target, self._encoding, self._delimiter, self._quotechar
            )

    async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
        """Write ``batch``; see the class docstring for the per-message results."""
        if self._target is None:
            raise RuntimeError("the file sink is not open")
        payloads = [envelope.payload for envelope in batch]
        if self._mode == "append":
            async with self._append_lock:
                return await anyio.to_thread.run_sync(self._append, self._target, payloads)
        return await anyio.to_thread.run_sync(self._write_each, self._target, payloads)

    async def close(self) -> None:
        """Nothing stays open between batches."""

    def _text(self, text: str) -> bytes:
        try:
            return text.encode(self._encoding)
        except UnicodeEncodeError as exc:
            raise PermanentError(f"payload cannot be written as {self._encoding}: {exc}") from None

    def _encode_record(self, payload: Any, fieldnames: list[str] | None) -> bytes:
        if self._format == "csv":
            assert fieldnames is not None
            row = writers.encode_csv_row(
                payload, fieldnames, delimiter=self._delimiter, quotechar=self._quotechar
            )
            return self._text(row)
        if self._format == "xml":
            return writers.encode_xml(
                payload, self._config.record or "record", encoding=self._encoding
            )
        data = writers.encode_json(
            payload, indent=self._mode == "per_message" and self._format == "json"
        )
        return data if self._utf8 else self._text(data.decode())

    def _header(self, fieldnames: list[str]) -> bytes:
        return self._text(
            writers.encode_csv_header(
                fieldnames, delimiter=self._delimiter, quotechar=self._quotechar
            )
        )

    def _append(self, target: Path, payloads: list[Any]) -> list[BaseException | None]:
        results: list[BaseException | None] = [None] * len(payloads)
        if self._format == "csv" and self._fieldnames is None:
            first = next((p for p in payloads if isinstance(p, dict)), None)
            if first is not None:
                self._fieldnames = writers.csv_fieldnames(first)
        written: list[int] = []
        chunks: list[bytes] = []
        for index, payload in enumerate(payloads):
            try:
                chunks.append(self._encode_record(payload, self._fieldnames or []))
            except PermanentError as exc:
                results[index] = exc
            else:
                written.append(index)
        if not chunks:
            return results
        try:
            with target.open("ab") as stream:
                start = stream.tell()
                try:
                    if start == 0:
                        stream.write(self._bom)
                    if self._format == "csv" and start == 0 and self._fieldnames:
                        stream.write(self._header(self._fieldnames))
                    stream.write(b"".join(chunks))
                    stream.flush()
                    if self._config.fsync:
                        os.fsync(stream.fileno())
                except OSError:
                    with contextlib.suppress(OSError):  # no half batch for the retry to follow
                        stream.truncate(start)
                    raise
        except OSError as exc:
            error = TransientError(f"cannot write {self._config.path}: {exc.strerror or exc}")
            for index in written:
                results[index] = error
        return results

    def _write_each(self, folder: Path, payloads: list[Any]) -> list[BaseException | None]:
        results: list[BaseException | None] = []
        for payload in payloads:
            try:
                name = check_file_name(self._file_name(payload))
                target = confine(folder, name, what="filename")
                fieldnames = self._row_fieldnames(payload)
                header = self._header(fieldnames) if fieldnames is not None else b""
                data = self._bom + header + self._encode_record(payload, fieldnames)
            except PermanentError as exc:
                results.append(exc)
                continue
            try:
                write_atomically(target, data, fsync=self._config.fsync)
            except OSError as exc:
                results.append(_write_failure(target.name, exc))
            else:
                results.append(None)
        return results

    def _row_fieldnames(self, payload: Any) -> list[str] | None:
        if self._format != "csv":
            return None
        return self._fieldnames or writers.csv_fieldnames(payload)

    def _file_name(self, payload: Any) -> str:
        assert self._filename is not None
        value = self._filename.evaluate(payload)
        if isinstance(value, bool) or not isinstance(value, str | int | float) or value == "":
            raise PermanentError(
                f"filename {self._filename.source!r} gave {value!r}; expected a non-empty string"
            )
        return str(value)


_NAME_ERRORS = frozenset({errno.ENAMETOOLONG, errno.EINVAL, errno.EILSEQ})
"""What the file system answers to a name it can never accept (not worth a retry)."""


def _write_failure(name: str, exc: OSError) -> TransientError | PermanentError:
    """A failed write of file ``name``: permanent when the file system refuses the name itself
    (too long, invalid characters for it), else transient (disk full, permissions, a folder in
    the way: an operator can fix those)."""
    reason = f"cannot write {name}: {exc.strerror or exc}"
    if exc.errno in _NAME_ERRORS:
        return PermanentError(f"{reason} (the file name can never be written)")
    return TransientError(reason)


SPEC = ComponentSpec(
    kind="sink",
    name="file",
    config=FileSinkConfig,
    factory=lambda config, context: FileSink(config, context),
    summary="Append messages to a JSON Lines or CSV file, or write one file per message.",
    description=(
        "In `append` mode (the default) each batch is appended to the file at `path` and"
        " flushed to disk (`fsync`) before the messages count as delivered; a CSV file gets"
        " its header row when it is created. Retried batches may append a message twice:"
        " declare an idempotency key on the flow.\n\n"
        "In `per_message` mode (chosen when `filename` is given) `path` is a folder and"
        " `filename` is a JSONata expression over the payload naming each message's file."
        " Files are written atomically (temporary file, `fsync`, rename), so writing the same"
        " name twice leaves one complete file: the write is idempotent.\n\n"
        "Payloads that cannot be written in the format (nested values in a CSV row, keys that"
        " are not XML names) are dead-lettered, and so, at once, are file names that can never"
        " be written: empty, `.`, `..` or ending in `/`, holding a NUL, with a part longer"
        " than 255 bytes, or refused by the file system as a name. Other file system errors"
        " (disk full, permissions, a folder where the file goes) are retried. Paths and file"
        " names must stay inside the project directory."
    ),
    examples=[
        "file: {path: outbox/orders.jsonl}",
        "file: {path: outbox/orders.csv, fieldnames: [order_id, total, status]}",
        'file: {path: outbox/orders/, format: json, filename: \'"order-" & order_id & ".json"\'}',
        "file: {path: outbox/invoices/, format: xml, record: Invoice,"
        ' filename: \'"invoice-" & number & ".xml"\'}',
    ],
    shorthand="path",
)
