"""Config model of the ``file`` sink (its fields are the reference docs and JSON Schema)."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Literal

from pydantic import Field, field_validator, model_validator

from dovetail.config.fields import JsonataExpr
from dovetail.connectors.file.source_config import (
    check_text_encoding,
    infer_format,
    relative_path,
)
from dovetail.plugins.spec import ComponentConfig

SinkFormat = Literal["jsonl", "json", "csv", "xml"]
SinkMode = Literal["append", "per_message"]

_SUFFIXES: dict[str, SinkFormat] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".json": "json",
    ".xml": "xml",
}
_APPENDABLE = ("jsonl", "csv")


class FileSinkConfig(ComponentConfig):
    path: str
    """`append`: the file to append to (`outbox/orders.jsonl`). `per_message`: the folder the
    files are written in. Relative to the project directory."""
    format: SinkFormat | None = None
    """jsonl, json, csv or xml. Default: from the extension of `path` in `append` mode, json
    in `per_message` mode. `append` supports jsonl and csv."""
    mode: SinkMode | None = None
    """`append` (one file) or `per_message` (one file per message). Default: `per_message`
    when `filename` is given, else `append`."""
    filename: JsonataExpr | None = None
    """`per_message`: JSONata over the payload giving the file name, e.g.
    `"order-" & order_id & ".json"`; it may contain sub-folders but never leave `path`."""
    encoding: str = "utf-8"
    """Text encoding of the files written."""
    delimiter: str | None = Field(default=None, min_length=1, max_length=1)
    """CSV: the field separator. Default `,`."""
    quotechar: str | None = Field(default=None, min_length=1, max_length=1)
    """CSV: the quote character. Default `"`."""
    fieldnames: list[str] | None = None
    """CSV: the columns, in order. Default: the header of an existing file, else the keys of
    the first message."""
    record: str | None = None
    """XML: the name of the root element of each document. Default `record`."""
    fsync: bool = True
    """Flush every write to disk before the message counts as delivered."""

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        return relative_path(value, "path")

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        return check_text_encoding(value)

    @property
    def effective_mode(self) -> SinkMode:
        """The mode with its default applied."""
        if self.mode is not None:
            return self.mode
        return "per_message" if self.filename is not None else "append"

    @property
    def effective_format(self) -> SinkFormat:
        """The format with its default applied (checked by the validator)."""
        if self.format is not None:
            return self.format
        if self.effective_mode == "per_message":
            return "json"
        return _SUFFIXES[PurePosixPath(self.path).suffix.lower()]

    @model_validator(mode="after")
    def _consistent(self) -> FileSinkConfig:
        mode = self.effective_mode
        if mode == "per_message" and self.filename is None:
            raise ValueError("filename is required in per_message mode")
        if mode == "append" and self.filename is not None:
            raise ValueError("filename only applies to per_message mode")
        if mode == "append":
            fmt = self.format or infer_format(self.path, _SUFFIXES)
            if fmt is None:
                raise ValueError(
                    f"format is required: the extension of {self.path!r} does not name one"
                )
            if fmt not in _APPENDABLE:
                raise ValueError(
                    f"format {fmt} cannot be appended to; use jsonl or csv, or mode per_message"
                )
        csv_options = [
            name for name in ("delimiter", "quotechar", "fieldnames") if getattr(self, name)
        ]
        if csv_options and self.effective_format != "csv":
            raise ValueError(f"{', '.join(csv_options)} only apply to format csv")
        if self.record is not None and self.effective_format != "xml":
            raise ValueError("record only applies to format xml")
        return self
