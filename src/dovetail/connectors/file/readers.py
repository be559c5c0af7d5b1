"""Readers for CSV, JSON Lines, JSON and fixed-width files, and ``read_records`` for any format.

Each reader takes a binary stream and ``ReaderOptions`` and yields ``Record`` objects; see
``formats`` for the contract (poison records carry a reason that starts with the line). XML
is read by ``xml_records.read_xml``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from dovetail.connectors.file.formats import (
    UTF8_BOM,
    FileUnreadable,
    LineReader,
    ReaderOptions,
    Record,
    RecordBroken,
    check_wide_bom,
    text_encoding,
)
from dovetail.connectors.file.xml_records import read_xml
from dovetail.errors import PayloadRejected
from dovetail.safety.limits import (
    check_depth,
    check_size,
    ensure_csv_field_limit,
    excerpt,
    format_bytes,
)


def json_type(value: Any) -> str:
    """The JSON name of a value's type, for messages (``object``, ``array``, ``string``...)."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _csv_message(exc: csv.Error) -> str:
    # The csv module appends a hint about open(newline='') that does not apply here.
    return str(exc).split(" - do you need", 1)[0]


def read_csv(stream: BinaryIO, options: ReaderOptions) -> Iterator[Record]:
    """Rows as dicts keyed by the header (or ``fieldnames``); all values are strings.

    Blank lines are skipped. A row with the wrong number of fields, a row that breaks the
    CSV syntax or the size limit, or a line that does not decode is a poison record; the
    file continues on the next line (after the end of the quoted field the row broke in). A
    header that cannot be read makes the file unreadable.
    """
    limits = options.limits
    ensure_csv_field_limit(limits.max_record_bytes)
    lines = LineReader(stream, options.encoding, limits.max_record_bytes, quote=options.quotechar)
    dialect: dict[str, Any] = {"delimiter": options.delimiter, "quotechar": options.quotechar}
    reader = csv.reader(lines, **dialect)
    fieldnames = list(options.fieldnames) if options.fieldnames else None
    need_header = options.header
    while True:
        lines.start_record()
        start = lines.line_no + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except (RecordBroken, csv.Error) as exc:
            if isinstance(exc, RecordBroken):
                reason, text = exc.reason, exc.text
            else:
                reason, text = (
                    f"line {start}: malformed CSV: {_csv_message(exc)}",
                    lines.record_text,
                )
            if need_header:
                raise FileUnreadable(f"cannot read the CSV header: {reason}") from None
            if isinstance(exc, RecordBroken):
                # inside a quoted field: skip to its closing quote, or its lines become rows
                while lines.quotes % 2 and lines.skip_line():
                    pass
            yield Record(text, start, reason)
            reader = csv.reader(lines, **dialect)
            continue
        if not row:
            continue
        if need_header:
            need_header = False
            duplicates = sorted({name for name in row if row.count(name) > 1})
            if fieldnames is None and duplicates:
                raise FileUnreadable(f"line {start}: CSV header repeats column(s) {duplicates}")
            if fieldnames is None:
                fieldnames = row
            continue
        assert fieldnames is not None  # header or configured fieldnames, checked by config
        if len(row) != len(fieldnames):
            yield Record(
                lines.record_text,
                start,
                f"line {start}: expected {len(fieldnames)} fields, found {len(row)}",
            )
            continue
        yield Record(dict(zip(fieldnames, row, strict=False)), start)  # lengths checked above


def _check_object(value: Any, where: str, max_depth: int) -> str | None:
    """The reason ``value`` cannot be a message payload, or None when it can."""
    if not isinstance(value, dict):
        return f"{where}: expected a JSON object, found {json_type(value)}"
    try:
        check_depth(value, max_depth)
    except PayloadRejected as exc:
        return f"{where}: {exc.reason} (max_depth)"
    return None


def read_jsonl(stream: BinaryIO, options: ReaderOptions) -> Iterator[Record]:
    """One JSON object per line; blank lines are skipped; bad lines are poison records."""
    limits = options.limits
    lines = LineReader(stream, options.encoding, limits.max_record_bytes)
    while True:
        lines.start_record()
        try:
            text = next(lines)
        except StopIteration:
            return
        except RecordBroken as exc:
            yield Record(exc.text, lines.line_no, exc.reason)
            continue
        if not text.strip():
            continue
        line = lines.line_no
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            yield Record(excerpt(text.rstrip("\r\n")), line, f"line {line}: invalid JSON: {exc}")
            continue
        reason = _check_object(value, f"line {line}", limits.max_depth)
        if reason is not None:
            yield Record(excerpt(text.rstrip("\r\n")), line, reason)
            continue
        yield Record(value, line)


def read_json(stream: BinaryIO, options: ReaderOptions) -> Iterator[Record]:
    """A JSON document read whole (up to ``max_file_bytes``): an array gives one record per
    element, an object gives one record. A document that does not parse is unreadable."""
    limits = options.limits
    size = os.fstat(stream.fileno()).st_size
    try:
        check_size(size, limits.max_file_bytes, "file")
    except PayloadRejected as exc:
        raise FileUnreadable(f"{exc.reason} (max_file_bytes)") from None
    data = stream.read(limits.max_file_bytes + 1)
    if len(data) > limits.max_file_bytes:
        raise FileUnreadable(
            f"file grew past the limit of {format_bytes(limits.max_file_bytes)} (max_file_bytes)"
        )
    check_wide_bom(data)
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM) :]
    encoding = text_encoding(options.encoding)
    try:
        document = orjson.loads(data if encoding == "utf-8" else data.decode(encoding))
    except orjson.JSONDecodeError as exc:
        raise FileUnreadable(f"invalid JSON document: {exc}") from None
    except UnicodeDecodeError as exc:
        raise FileUnreadable(f"file is not valid {encoding}: {exc.reason}") from None
    if isinstance(document, dict):
        items: list[Any] = [document]
        line: int | None = 1
    elif isinstance(document, list):
        items, line = document, None
    else:
        raise FileUnreadable(
            f"expected an object or an array at the top level, found {json_type(document)}"
        )
    del document, data
    measure = size > limits.max_record_bytes
    for index, item in enumerate(items):
        where = "document" if line is not None else f"element {index}"
        reason = _check_object(item, where, limits.max_depth)
        if reason is None and measure:
            encoded = len(orjson.dumps(item))
            if encoded > limits.max_record_bytes:
                reason = (
                    f"{where}: record is {format_bytes(encoded)}, larger than the limit of"
                    f" {format_bytes(limits.max_record_bytes)} (max_record_bytes)"
                )
        if reason is not None:
            raw = orjson.dumps(item).decode() if isinstance(item, dict | list) else repr(item)
            yield Record(excerpt(raw), line, reason)
        else:
            yield Record(item, line)
        items[index] = None  # release what was emitted


def read_fixed(stream: BinaryIO, options: ReaderOptions) -> Iterator[Record]:
    """Fixed-width lines cut into ``columns`` (name, width) in order; blank lines skipped.

    Values are stripped of surrounding spaces when ``strip`` is set. A line longer than the
    declared width is a poison record (the layout does not match); a shorter line leaves the
    missing columns empty, as trailing blanks are often trimmed.
    """
    width = sum(size for _, size in options.columns)
    lines = LineReader(stream, options.encoding, options.limits.max_record_bytes)
    while True:
        lines.start_record()
        try:
            text = next(lines)
        except StopIteration:
            return
        except RecordBroken as exc:
            yield Record(exc.text, lines.line_no, exc.reason)
            continue
        body = text.rstrip("\r\n")
        if not body.strip():
            continue
        line = lines.line_no
        if len(body.rstrip()) > width:
            yield Record(
                excerpt(body),
                line,
                f"line {line}: expected at most {width} characters, found {len(body.rstrip())}",
            )
            continue
        payload: dict[str, str] = {}
        position = 0
        for name, size in options.columns:
            value = body[position : position + size]
            payload[name] = value.strip() if options.strip else value
            position += size
        yield Record(payload, line)


READERS: dict[str, Callable[[BinaryIO, ReaderOptions], Iterator[Record]]] = {
    "csv": read_csv,
    "jsonl": read_jsonl,
    "json": read_json,
    "fixed": read_fixed,
    "xml": read_xml,
}
"""The reader of each ``format`` value."""


_COMPRESSED_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"PK\x03\x04", "zip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


def compression_of(head: bytes) -> str | None:
    """The compression format whose magic bytes start ``head`` (gzip, zip, bzip2...), or None.

    Compressed files are refused rather than read as text: decompressing untrusted input
    needs its own size limit, and reading it undecoded would only produce noise.
    """
    for magic, name in _COMPRESSED_MAGIC:
        if head.startswith(magic):
            return name
    if head[:3] == b"BZh" and head[4:10] == b"1AY&SY":
        return "bzip2"
    return None


def read_records(
    path: Path, options: ReaderOptions, *, opened: Callable[[BinaryIO], None] | None = None
) -> Iterator[Record]:
    """Stream the records of ``path``; bad input becomes poison or fatal records, never raises.

    ``opened`` is given the binary stream once the file is open (to measure bytes read). The
    file is closed when the iterator is exhausted or closed.
    """
    try:
        stream = path.open("rb")
    except OSError as exc:
        yield Record(None, None, f"cannot open file: {exc.strerror or exc}", fatal=True)
        return
    if opened is not None:
        opened(stream)
    with stream:
        try:
            compressed = compression_of(stream.peek(16)[:16])
            if compressed is not None:
                raise FileUnreadable(
                    f"file is {compressed}-compressed; compressed input is not read"
                    " (decompress it before it reaches the folder)"
                )
            yield from READERS[options.format](stream, options)
        except FileUnreadable as exc:
            yield Record(None, None, str(exc), fatal=True)
        except OSError as exc:
            yield Record(None, None, f"cannot read file: {exc.strerror or exc}", fatal=True)
