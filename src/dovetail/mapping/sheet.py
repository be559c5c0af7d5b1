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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dovetail.errors import MappingFailed, Problem
from dovetail.mapping.failures import error_kind
from dovetail.mapping.jsonata import JsonataSyntaxError, compile_expression
from dovetail.mapping.lookup_table import LookupTable, load_table
from dovetail.mapping.sheet_loader import COLUMNS, MappingSheet, SheetError, SheetRow, load_sheet
from dovetail.mapping.transforms import (
    CONCAT,
    DEFAULT_CONCAT_SEPARATOR,
    Transform,
    TransformFailed,
    TransformSpecError,
    build_transform,
    compose,
    is_empty,
    join_parts,
    parse_chain,
)

__all__ = ["COLUMNS", "MappingSheet", "SheetError", "SheetRow", "compile_sheet", "load_sheet"]

Mapping = Callable[[Any], Any]
"""A compiled sheet: input payload in, new output object out; raises ``MappingFailed``."""

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


@dataclass(slots=True)
class _Field:
    """One compiled row: either ``read`` (payload -> value) or a folded ``constant``."""

    row: SheetRow
    read: Callable[[Any], Any] | None
    transform: Transform | None
    constant: Any = None


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
    fields: list[_Field] = []
    problems: list[Problem] = []
    for row in sheet.rows:
        try:
            fields.append(_compile_row(row, tables))
        except _CellError as exc:
            line, col = row.position(exc.column)
            problems.append(Problem(sheet.path, line, col, exc.message))
    if problems:
        raise SheetError(problems)
    return _generate(sheet, fields)


def _compile_row(row: SheetRow, tables: _Tables) -> _Field:
    try:
        chain = parse_chain(row.transform)
        concat_at = next((i for i, call in enumerate(chain) if call.name == CONCAT), None)
        head = chain if concat_at is None else chain[:concat_at]
        tail = [] if concat_at is None else chain[concat_at + 1 :]
        before = compose([build_transform(call, tables) for call in head])
        after = compose([build_transform(call, tables) for call in tail])
    except TransformSpecError as exc:
        raise _CellError("transform", str(exc)) from None
    if concat_at is None:
        read, constant = _compile_source(row.source)
        transform = before
    else:
        separator = chain[concat_at].arg
        read, constant = _compile_concat(
            row.source, before, DEFAULT_CONCAT_SEPARATOR if separator is None else separator
        )
        transform = after
    if read is not None:
        return _Field(row, read, transform)
    return _Field(row, None, None, _fold(row, constant, transform))


def _fold(row: SheetRow, value: Any, transform: Transform | None) -> Any:
    """Apply the chain to a constant at compile time: a bad constant is a sheet error."""
    if transform is not None:
        try:
            value = transform(value)
        except TransformFailed as exc:
            raise _CellError("transform", f"{exc} (for the constant source)") from None
    if row.required and is_empty(value):
        raise _CellError(
            "required", f"required field {row.target} can never have a value: no source or default"
        )
    return value


def _compile_source(text: str) -> tuple[Callable[[Any], Any] | None, Any]:
    """``(read, None)`` for a path or expression, ``(None, constant)`` for a constant."""
    if not text:
        return None, None
    if text.startswith("="):
        literal = text[1:]
        if len(literal) >= 2 and literal[0] == literal[-1] == '"':
            literal = literal[1:-1]
        return None, literal
    if _PATH.match(text) and text not in _RESERVED:
        return _path_reader(text), None
    try:
        expression = compile_expression(text)
    except JsonataSyntaxError as exc:
        where = f" at character {exc.position}" if exc.position is not None else ""
        raise _CellError("source", f"{exc}{where}") from None
    if _LITERAL.match(text):
        return None, expression.evaluate(None)
    return expression.evaluate, None


def _path_reader(path: str) -> Callable[[Any], Any]:
    """A reader for a dotted path: plain dict access, JSONata semantics for anything else."""
    keys = tuple(path.split("."))
    slow = compile_expression(path).evaluate
    if len(keys) == 1:
        (key,) = keys

        def read_key(payload: Any) -> Any:
            return payload.get(key) if type(payload) is dict else slow(payload)

        return read_key

    def read_path(payload: Any) -> Any:
        value = payload
        for key in keys:
            if type(value) is dict:
                value = value.get(key)
            elif value is None:
                return None
            else:
                return slow(payload)
        return value

    return read_path


def _compile_concat(
    text: str, each: Transform | None, separator: str
) -> tuple[Callable[[Any], Any] | None, Any]:
    parts = _split_sources(text)
    if not parts or any(not part for part in parts):
        raise _CellError("source", "concat needs sources separated by commas (first, last)")
    sources = [_compile_source(part) for part in parts]
    join = join_parts(separator)
    if all(read is None for read, _ in sources):
        constants = [value for _, value in sources]
        try:
            return None, join([each(v) for v in constants] if each else constants)
        except TransformFailed as exc:
            raise _CellError("transform", f"{exc} (for the constant source)") from None
    readers = tuple(read if read is not None else _constant(value) for read, value in sources)
    if each is None:
        return (lambda payload: join([read(payload) for read in readers])), None
    return (lambda payload: join([each(read(payload)) for read in readers])), None


def _constant(value: Any) -> Callable[[Any], Any]:
    return lambda _payload: value


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


def _generate(sheet: MappingSheet, fields: list[_Field]) -> Mapping:
    """Generate one flat function: read and transform each field, check, build the output.

    The generated code contains only names it defines and ``repr`` of target keys; values and
    functions are passed in its namespace, never as source text.
    """
    namespace: dict[str, Any] = {
        "TransformFailed": TransformFailed,
        "MappingFailed": MappingFailed,
        "_containers": (list, dict),
    }
    body = ["def mapping(payload):", "    i = -1", "    try:"]
    leaves: dict[str, str] = {}
    checks: list[str] = []
    for i, item in enumerate(fields):
        if item.read is None:
            namespace[f"c{i}"] = item.constant
            leaves[item.row.target] = f"c{i}"
            continue
        namespace[f"r{i}"] = item.read
        call = f"r{i}(payload)"
        if item.transform is not None:
            namespace[f"t{i}"] = item.transform
            call = f"t{i}({call})"
        body += [f"        i = {i}", f"        v{i} = {call}"]
        leaves[item.row.target] = f"v{i}"
        if item.row.required:
            empty = f"v{i} is None or v{i} == '' or (isinstance(v{i}, _containers) and not v{i})"
            checks.append(f"    if {empty}:\n        raise _required({i})")
    body += [
        "        pass",
        "    except (TransformFailed, MappingFailed) as exc:",
        "        raise _failed(i, exc) from None",
        *checks,
        f"    return {_render(_tree(leaves))}",
    ]
    rows = [item.row for item in fields]
    namespace["_failed"] = lambda i, exc: _field_failed(rows[i], exc)
    namespace["_required"] = lambda i: _required_empty(rows[i])
    code = compile("\n".join(body) + "\n", f"<mapping sheet {sheet.path}>", "exec")
    exec(code, namespace)
    mapping: Mapping = namespace["mapping"]
    return mapping


def _tree(leaves: dict[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for target, leaf in leaves.items():
        *parents, last = target.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = leaf
    return tree


def _render(node: dict[str, Any]) -> str:
    items = (f"{key!r}: {_render(v) if isinstance(v, dict) else v}" for key, v in node.items())
    return "{" + ", ".join(items) + "}"


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
