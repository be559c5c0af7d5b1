"""Mapping sheets: a source-to-target table an analyst can read, compiled into one function.

One row per target field, with the columns ``target, source, transform, required, note``
(a CSV file with a header row, or YAML: a list of mappings with those keys, or
``{fields: [...], description: ...}``). Only ``target`` is mandatory; column order is free and
header names are case-insensitive. A CSV sheet may use ``,`` or ``;`` as its delimiter.

- ``target``: a dotted path in the output (``customer.name``); nested objects are created.
  Segments may contain any character but ``.``; a target may not be both a value and an object.
- ``source``: what the value is read from:

  * a dotted path into the input (``customer.email``), read directly (JSONata path semantics);
  * a constant: ``=EUR`` or ``="EUR"`` (the text after ``=``, quotes removed), or a JSONata
    literal (``'EUR'``, ``42``, ``true``);
  * any other JSONata expression (``$sum(lines.amount)``), compiled once;
  * empty, when the transform supplies the value (``default:EUR``);
  * with ``concat``: several of the above separated by commas (``first_name, last_name``).
- ``transform``: a ``|``-separated chain from ``dovetail.mapping.transforms``.
- ``required``: ``yes``/``no`` (also ``y``/``n``, ``true``/``false``; empty is no). A required
  target whose final value is null or empty fails the message with
  ``required field <target> is empty (source <source>)``.
- ``note``: free text for the interface docs.

Every target is written, ``null`` when there is no value, so the output has the same shape for
every message (CSV and SQL sinks rely on it). Constant values and their transforms are
computed once at compile time, so a bad constant is a sheet error, not a runtime failure.

Errors in the sheet raise ``SheetError`` with ``file:line:col`` positions. For CSV, ``line``
is the file line where the row starts and ``col`` the 1-based column (cell) number; for YAML
they are the line and character column of the value.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dovetail.errors import MappingFailed, Problem
from dovetail.mapping.failures import error_kind
from dovetail.mapping.jsonata import JsonataSyntaxError, compile_expression
from dovetail.mapping.lookup_table import LookupTable, load_table
from dovetail.mapping.sheet_codegen import FieldPlan, Mapping, Read, Step, generate_mapping
from dovetail.mapping.sheet_loader import COLUMNS, MappingSheet, SheetError, SheetRow, load_sheet
from dovetail.mapping.transforms import (
    CONCAT,
    DEFAULT_CONCAT_SEPARATOR,
    TransformFailed,
    TransformSpecError,
    build_transform,
    is_empty,
    join_parts,
    parse_chain,
)

__all__ = [
    "COLUMNS",
    "Mapping",
    "MappingSheet",
    "SheetError",
    "SheetRow",
    "compile_sheet",
    "load_sheet",
]

_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_RESERVED = frozenset({"true", "false", "null", "and", "or", "in"})
_LITERAL = re.compile(r"""^(?:'[^']*'|"[^"]*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)$""")
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class _CellError(Exception):
    """A problem in one cell of a row, before it is given the sheet's position."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


class _Tables:
    """Resolves ``lookup:TABLE`` to ``lookups/TABLE.csv`` under the project (cached)."""

    def __init__(self, project_dir: Path) -> None:
        self._dir = project_dir / "lookups"

    def __call__(self, name: str) -> LookupTable:
        if not _TABLE_NAME.match(name):
            raise ValueError(
                f"{name!r} is not a table name (letters, digits, _ and -; read from"
                " lookups/NAME.csv)"
            )
        return load_table(self._dir / f"{name}.csv", name=f"lookups/{name}.csv")


def compile_sheet(sheet: MappingSheet, project_dir: Path) -> Mapping:
    """Turn ``sheet`` into one function, once per flow start.

    Raises ``SheetError`` listing every bad transform, source or constant. The function
    returns a new object (the input is not modified) and raises ``MappingFailed`` when a
    transform cannot convert a value or a required target ends up empty.
    """
    tables = _Tables(project_dir)
    fields: list[FieldPlan] = []
    problems: list[Problem] = []
    for row in sheet.rows:
        try:
            fields.append(_compile_row(row, tables))
        except _CellError as exc:
            line, col = row.position(exc.column)
            problems.append(Problem(sheet.path, line, col, exc.message))
    if problems:
        raise SheetError(problems)
    rows = sheet.rows
    return generate_mapping(
        str(sheet.path),
        fields,
        lambda i, exc: _field_failed(rows[i], exc),
        lambda i: _required_empty(rows[i]),
    )


def _compile_row(row: SheetRow, tables: _Tables) -> FieldPlan:
    try:
        chain = parse_chain(row.transform)
        concat_at = next((i for i, call in enumerate(chain) if call.name == CONCAT), None)
        head = chain if concat_at is None else chain[:concat_at]
        tail = [] if concat_at is None else chain[concat_at + 1 :]
        before = tuple(Step(call.name, build_transform(call, tables)) for call in head)
        after = tuple(Step(call.name, build_transform(call, tables)) for call in tail)
    except TransformSpecError as exc:
        raise _CellError("transform", str(exc)) from None
    if concat_at is None:
        read = _compile_source(row.source)
        if read.path is None and read.evaluate is None:
            return FieldPlan(row.target, row.required, constant=_fold(row, read.constant, before))
        return FieldPlan(row.target, row.required, reads=(read,), each=before)
    separator = chain[concat_at].arg
    join = join_parts(DEFAULT_CONCAT_SEPARATOR if separator is None else separator)
    parts = _split_sources(row.source)
    if not parts or any(not part for part in parts):
        raise _CellError("source", "concat needs sources separated by commas (first, last)")
    reads = tuple(_compile_source(part) for part in parts)
    if all(read.path is None and read.evaluate is None for read in reads):
        try:
            joined = join([_apply(before, read.constant) for read in reads])
        except TransformFailed as exc:
            raise _CellError("transform", f"{exc} (for the constant source)") from None
        return FieldPlan(row.target, row.required, constant=_fold(row, joined, after))
    return FieldPlan(row.target, row.required, reads=reads, each=before, join=join, after=after)


def _apply(steps: tuple[Step, ...], value: Any) -> Any:
    for step in steps:
        value = step.apply(value)
    return value


def _fold(row: SheetRow, value: Any, steps: tuple[Step, ...]) -> Any:
    """Apply the chain to a constant at compile time: a bad constant is a sheet error."""
    try:
        value = _apply(steps, value)
    except TransformFailed as exc:
        raise _CellError("transform", f"{exc} (for the constant source)") from None
    if row.required and is_empty(value):
        raise _CellError(
            "required", f"required field {row.target} can never have a value: no source or default"
        )
    return value


def _compile_source(text: str) -> Read:
    """A path (read directly), an expression (compiled once) or a constant."""
    if not text:
        return Read()
    if text.startswith("="):
        literal = text[1:]
        if len(literal) >= 2 and literal[0] == literal[-1] == '"':
            literal = literal[1:-1]
        return Read(constant=literal)
    try:
        expression = compile_expression(text)
    except JsonataSyntaxError as exc:
        where = f" at character {exc.position}" if exc.position is not None else ""
        raise _CellError("source", f"{exc}{where}") from None
    if _PATH.match(text) and text not in _RESERVED:
        return Read(path=tuple(text.split(".")), evaluate=expression.evaluate)
    if _LITERAL.match(text):
        return Read(constant=expression.evaluate(None))
    return Read(evaluate=expression.evaluate)


def _split_sources(text: str) -> list[str]:
    """Split at commas outside quotes, brackets and parentheses."""
    parts: list[str] = []
    depth, quote, start = 0, "", 0
    for index, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"`":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index].strip())
            start = index + 1
    parts.append(text[start:].strip())
    return [] if parts == [""] else parts


def _source_label(row: SheetRow) -> str:
    return f"source {row.source}" if row.source else "no source"


def _field_failed(row: SheetRow, exc: Exception) -> MappingFailed:
    """The failure of one target field: the field, the kind of error, never the value (a
    transform's own message is value-free; any other error's text goes to the detail)."""
    if isinstance(exc, MappingFailed):
        reason, detail = exc.reason, exc.detail
    elif isinstance(exc, TransformFailed):
        reason, detail = str(exc), None
    else:
        reason, detail = error_kind(exc), f"{type(exc).__name__}: {exc}"
    return MappingFailed(f"field {row.target}: {reason} ({_source_label(row)})", detail=detail)


def _required_empty(row: SheetRow) -> MappingFailed:
    return MappingFailed(f"required field {row.target} is empty ({_source_label(row)})")
