"""Config model of the ``file`` source (its fields are the reference docs and JSON Schema)."""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import ByteSize, Field, field_validator, model_validator

from dovetail.config.types import Duration
from dovetail.connectors.file.formats import ReaderOptions
from dovetail.plugins.spec import ComponentConfig
from dovetail.safety.limits import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_RECORD_BYTES,
    Limits,
)
from dovetail.safety.paths import PathEscapeError, check_relative

SourceFormat = Literal["csv", "json", "jsonl", "xml", "fixed"]

FORMAT_BY_SUFFIX: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".xml": "xml",
}

_OPTIONS_BY_FORMAT: dict[str, tuple[str, ...]] = {
    "csv": ("delimiter", "quotechar", "header", "fieldnames"),
    "xml": ("record",),
    "fixed": ("columns", "strip"),
}


def relative_path(value: str, what: str) -> str:
    """Pydantic-friendly ``check_relative``: raises ``ValueError`` with the reason."""
    try:
        return check_relative(value, what=what)
    except PathEscapeError as exc:
        raise ValueError(exc.reason) from None


def check_text_encoding(value: str) -> str:
    """An encoding the line readers can split on newlines (ASCII-compatible)."""
    try:
        name = codecs.lookup(value).name
    except LookupError:
        raise ValueError(f"unknown encoding {value!r}") from None
    if name == "utf-8-sig":  # UTF-8 behind a byte order mark
        return value
    probe = "\n\r,;\"'<>{}[]:"
    try:
        compatible = probe.encode(value) == probe.encode("ascii")
    except UnicodeError:
        compatible = False
    if not compatible:
        raise ValueError(
            f"encoding {value!r} is not ASCII-compatible (UTF-16/32 files must be converted;"
            " use utf-8, utf-8-sig, latin-1, cp1252, ...)"
        )
    return value


def infer_format(path: str, suffixes: Mapping[str, str]) -> str | None:
    """The format named by the extension of ``path``'s last part, if any."""
    return suffixes.get(PurePosixPath(path).suffix.lower())


class AfterConfig(ComponentConfig):
    move_to: str | None = None
    """Folder (relative to the project) a file moves to once all its records are settled.
    Without it the file stays and is not read again unless it changes."""
    on_error_move_to: str | None = None
    """Folder for files that could not be read completely (invalid document, unreadable
    encoding, a symlink pointing out of the project). Without it such files stay in place."""

    @field_validator("move_to", "on_error_move_to")
    @classmethod
    def _relative(cls, value: str | None) -> str | None:
        return None if value is None else relative_path(value, "after folder")


class FixedColumn(ComponentConfig):
    name: str
    """The payload key of this column."""
    width: int = Field(ge=1)
    """How many characters the column takes; columns follow each other in order."""


class FileSourceConfig(ComponentConfig):
    path: str
    """Glob of the files to read, relative to the project directory (`inbox/orders/*.csv`;
    `**` matches sub-folders). Files are read in name order; hidden files (`.name`), which
    writers use while a file is incomplete, are skipped."""
    format: SourceFormat | None = None
    """csv, json, jsonl, xml or fixed (fixed-width). Default: from the extension in `path`."""
    encoding: str | None = None
    """Text encoding (ASCII-compatible). Default utf-8 (a byte order mark is skipped); for
    XML, the encoding the document declares."""
    delimiter: str | None = Field(default=None, min_length=1, max_length=1)
    """CSV: the field separator. Default `,`."""
    quotechar: str | None = Field(default=None, min_length=1, max_length=1)
    """CSV: the quote character. Default `"`."""
    header: bool | None = None
    """CSV: whether the first row holds the column names. Default true."""
    fieldnames: list[str] | None = None
    """CSV: the column names. Required when `header` is false; with a header row, they
    replace the names found there."""
    record: str | None = None
    """XML: the name of the element that holds one record (`Order`); required for XML.
    Matched on the local name, or on `{namespace}Order` when given in that form."""
    columns: list[FixedColumn] | None = None
    """Fixed-width: the columns of a line, in order; required for format fixed."""
    strip: bool | None = None
    """Fixed-width: strip spaces around values. Default true."""
    after: AfterConfig | None = None
    """Where files go once all their records are settled (`move_to`) or when they cannot be
    read (`on_error_move_to`)."""
    poll_interval: Duration = 2.0
    """How often the glob is checked for new files when not running with `--once`."""
    min_age: Duration = 0.0
    """Leave files modified more recently than this for a later poll (not with `--once`), so
    a file still being written is not read half-way."""
    max_record_bytes: ByteSize = ByteSize(DEFAULT_MAX_RECORD_BYTES)
    """Largest record (CSV row, JSON line, XML record element) accepted, e.g. `256KiB`;
    larger records are dead-lettered."""
    max_file_bytes: ByteSize = ByteSize(DEFAULT_MAX_FILE_BYTES)
    """Largest JSON document (read whole) accepted, e.g. `64MiB`."""
    max_depth: int = Field(default=DEFAULT_MAX_DEPTH, ge=1, le=1000)
    """Deepest nesting of objects, arrays or XML elements accepted in a record."""

    @model_validator(mode="before")
    @classmethod
    def _infer_format(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and data.get("format") is None
            and isinstance(data.get("path"), str)
        ):
            inferred = infer_format(data["path"], FORMAT_BY_SUFFIX)
            if inferred is not None:
                data = {**data, "format": inferred}
        return data

    @field_validator("path")
    @classmethod
    def _relative_glob(cls, value: str) -> str:
        relative_path(value, "path")
        if value.endswith(("/", "\\")):
            raise ValueError(f"path must match files, e.g. {value}*.csv")
        return value

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str | None) -> str | None:
        return None if value is None else check_text_encoding(value)

    @model_validator(mode="after")
    def _consistent(self) -> FileSourceConfig:
        if self.format is None:
            raise ValueError(
                f"format is required: the extension of {self.path!r} does not name one"
                " (csv, json, jsonl, xml, fixed)"
            )
        for fmt, names in _OPTIONS_BY_FORMAT.items():
            if fmt == self.format:
                continue
            given = [name for name in names if getattr(self, name) is not None]
            if given:
                raise ValueError(f"{', '.join(given)} only apply to format {fmt}")
        if self.format == "csv" and self.header is False and not self.fieldnames:
            raise ValueError("fieldnames are required when header is false")
        if self.fieldnames is not None and len(set(self.fieldnames)) != len(self.fieldnames):
            raise ValueError("fieldnames must be unique")
        if self.format == "xml" and not self.record:
            raise ValueError("record (the element that holds one record) is required for XML")
        if self.format == "fixed" and not self.columns:
            raise ValueError("columns are required for format fixed")
        return self

    def reader_options(self) -> ReaderOptions:
        """The reader settings with every default applied."""
        assert self.format is not None
        return ReaderOptions(
            format=self.format,
            encoding=self.encoding,
            delimiter=self.delimiter or ",",
            quotechar=self.quotechar or '"',
            header=True if self.header is None else self.header,
            fieldnames=tuple(self.fieldnames) if self.fieldnames else None,
            record=self.record,
            columns=tuple((column.name, column.width) for column in self.columns or ()),
            strip=True if self.strip is None else self.strip,
            limits=Limits(
                max_record_bytes=int(self.max_record_bytes),
                max_file_bytes=int(self.max_file_bytes),
                max_depth=self.max_depth,
            ),
        )
