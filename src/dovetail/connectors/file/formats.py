"""Streaming record readers: the common record type, options and the physical-line reader.

A reader turns one file into an iterator of ``Record``: a parsed payload with the line it
starts on, a *poison* record (``error`` set, payload = the raw text) that the source
dead-letters while the file continues, or a *fatal* record (``fatal``) after which nothing
more of the file can be read. Readers never raise for bad input and never hold more than one
record (bounded by ``Limits.max_record_bytes``) in memory; JSON documents, read whole, are
bounded by ``Limits.max_file_bytes``.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from dovetail.safety.limits import Limits, excerpt, format_bytes

UTF8_BOM = codecs.BOM_UTF8
_WIDE_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_SKIP_CHUNK = 64 * 1024


@dataclass(slots=True)
class Record:
    """One record read from a file.

    ``error`` set: the record is rejected (``payload`` is its raw text, cut to a sane size).
    ``fatal`` set too: the file cannot be read further; ``payload`` is None.
    """

    payload: Any
    line: int | None
    error: str | None = None
    fatal: bool = False


@dataclass(frozen=True, slots=True)
class ReaderOptions:
    """How to read a file; built from the source's config model."""

    format: str
    encoding: str | None = None
    """None: UTF-8 for text formats; for XML, whatever the document declares."""
    delimiter: str = ","
    quotechar: str = '"'
    header: bool = True
    fieldnames: tuple[str, ...] | None = None
    record: str | None = None
    columns: tuple[tuple[str, int], ...] = ()
    strip: bool = True
    limits: Limits = field(default_factory=Limits)


class FileUnreadable(Exception):
    """Raised inside readers when the file as a whole cannot be read; becomes a fatal record."""


class RecordBroken(Exception):
    """Raised by ``LineReader`` when the current record breaks a limit or cannot be decoded."""

    def __init__(self, reason: str, text: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.text = text


def text_encoding(encoding: str | None) -> str:
    """The codec used to decode lines: ``utf-8-sig`` reads as UTF-8 (the BOM is stripped)."""
    name = codecs.lookup(encoding or "utf-8").name
    return "utf-8" if name == "utf-8-sig" else name


def check_wide_bom(head: bytes) -> None:
    """Raise ``FileUnreadable`` when ``head`` starts with a UTF-16 or UTF-32 byte order mark."""
    for bom in _WIDE_BOMS:
        if head.startswith(bom):
            raise FileUnreadable(
                "file is UTF-16 or UTF-32 encoded (byte order mark found);"
                " convert it to UTF-8 or another ASCII-compatible encoding"
            )


class LineReader:
    """Physical lines of a binary file, decoded one at a time, numbered from 1.

    Keeps the text of the lines taken since ``start_record()`` (the raw record, for poison
    messages). A line that would make the record larger than ``max_bytes`` is skipped to its
    end without being held in memory, and ``RecordBroken`` is raised; so is a line that does
    not decode. The reason starts with the line the record starts on (``first_line``) and,
    for a record of several lines (a quoted CSV field), also names the physical line of the
    problem. The reader stays usable after ``RecordBroken``.
    """

    def __init__(
        self, stream: BinaryIO, encoding: str | None, max_bytes: int, *, quote: str | None = None
    ) -> None:
        self._stream = stream
        self._quote = quote.encode(text_encoding(encoding)) if quote else None
        self.quotes = 0
        """Quote characters seen since ``start_record()`` (odd: inside a quoted field)."""
        self._encoding = text_encoding(encoding)
        self._max = max_bytes
        self._first = True
        self._taken_bytes = 0
        self.line_no = 0
        self.first_line = 1
        """The line the current record starts on (the next line after ``start_record()``)."""
        self.taken: list[str] = []

    def start_record(self) -> None:
        """Forget the lines of the previous record; the next line starts a new one."""
        self.taken.clear()
        self._taken_bytes = 0
        self.quotes = 0
        self.first_line = self.line_no + 1

    def on_line(self) -> str:
        """``" on line N"`` when the current physical line is not the record's first, else
        ``""``: the second half of a reason that starts with ``line <first_line>:``."""
        return f" on line {self.line_no}" if self.line_no != self.first_line else ""

    def _count(self, raw: bytes) -> None:
        if self._quote is not None:
            self.quotes += raw.count(self._quote)

    def skip_line(self) -> bool:
        """Skip one physical line without holding it (counting its quotes); False at the end."""
        chunk = self._stream.readline(_SKIP_CHUNK)
        if not chunk:
            return False
        self.line_no += 1
        self._count(chunk)
        if not chunk.endswith(b"\n"):
            self._skip_rest_of_line()
        return True

    @property
    def record_text(self) -> str:
        return excerpt("".join(self.taken))

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        raw = self._stream.readline(self._max + 1)
        if not raw:
            raise StopIteration
        if self._first:
            self._first = False
            check_wide_bom(raw)
            if raw.startswith(UTF8_BOM) and self._encoding == "utf-8":
                raw = raw[len(UTF8_BOM) :]
        self.line_no += 1
        self._count(raw)
        self._taken_bytes += len(raw)
        if self._taken_bytes > self._max:
            partial = raw.decode(self._encoding, "replace")
            if not raw.endswith(b"\n"):
                self._skip_rest_of_line()
            raise RecordBroken(
                f"line {self.first_line}: record larger than the limit of"
                f" {format_bytes(self._max)} (max_record_bytes){self._reached()}",
                excerpt("".join(self.taken) + partial),
            )
        try:
            text = raw.decode(self._encoding)
        except UnicodeDecodeError as exc:
            raise RecordBroken(
                f"line {self.first_line}: not valid {self._encoding}"
                f" (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}{self.on_line()})",
                excerpt("".join(self.taken) + raw.decode(self._encoding, "replace")),
            ) from None
        self.taken.append(text)
        return text

    def _reached(self) -> str:
        return f", reached on line {self.line_no}" if self.line_no != self.first_line else ""

    def _skip_rest_of_line(self) -> None:
        while True:
            chunk = self._stream.readline(_SKIP_CHUNK)
            self._count(chunk)
            if not chunk or chunk.endswith(b"\n"):
                return
