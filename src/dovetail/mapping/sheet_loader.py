"""Reading mapping sheets (CSV or YAML) into rows with cell positions.

The sheet format is described in ``dovetail.mapping.sheet``, which also compiles sheets.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml.error import MarkedYAMLError, YAMLError

from dovetail.config.yaml_positions import bounded_yaml, check_nodes
from dovetail.errors import ConfigError, Problem
from dovetail.safety.limits import DEFAULT_MAX_DEPTH

COLUMNS: tuple[str, ...] = ("target", "source", "transform", "required", "note")
"""The columns of a mapping sheet, in their documented order."""

_YES = frozenset({"yes", "y", "true"})
_NO = frozenset({"no", "n", "false", ""})


class SheetError(ConfigError):
    """A mapping sheet is wrong; ``path``, ``line``, ``col`` and ``message`` locate the first
    problem, ``problems`` lists all of them (``sheet.csv:4:3: unknown transform 'uper'``)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems)
        first = problems[0]
        self.path = first.path
        self.line = first.line
        self.col = first.col
        self.message = first.message


@dataclass(frozen=True, slots=True)
class SheetRow:
    """One row of a sheet, with the ``(line, col)`` of each of its cells for error messages."""

    target: str
    source: str
    transform: str
    required: bool
    note: str
    line: int
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)

    def position(self, column: str) -> tuple[int, int]:
        """Where the cell of ``column`` is (its row's start when the cell is absent)."""
        return self.positions.get(column, (self.line, 1))


@dataclass(frozen=True, slots=True)
class MappingSheet:
    """A loaded sheet: its rows in file order (for execution and the interface docs)."""

    path: str
    rows: tuple[SheetRow, ...]
    description: str | None = None


class _Problems:
    """Collects located problems so one lint run reports every mistake in a sheet."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.items: list[Problem] = []

    def add(self, line: int, col: int, message: str) -> None:
        self.items.append(Problem(self.path, line, col, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise SheetError(self.items)


def load_sheet(path: Path | str, *, name: str | None = None) -> MappingSheet:
    """Read a ``.csv``, ``.yaml`` or ``.yml`` mapping sheet; raises ``SheetError``.

    ``name`` is the path shown in error positions (as written in the flow); default ``path``.
    Checks the layout, the ``required`` values and the target paths; transforms and sources
    are checked by ``compile_sheet``.
    """
    path = Path(path)
    problems = _Problems(name or str(path))
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".yaml", ".yml"):
        problems.add(1, 1, "a mapping sheet must be a .csv, .yaml or .yml file")
        problems.raise_if_any()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else "cannot read file"
        problems.add(1, 1, reason)
        problems.raise_if_any()
    if suffix == ".csv":
        raw_rows, description = _csv_rows(text, problems), None
    else:
        raw_rows, description = _yaml_rows(text, problems)
    rows = [row for raw in raw_rows if (row := _row(raw, problems)) is not None]
    _check_targets(rows, problems)
    if not rows and not problems.items:
        problems.add(1, 1, "the sheet has no rows")
    problems.raise_if_any()
    return MappingSheet(path=problems.path, rows=tuple(rows), description=description)


_Cells = dict[str, tuple[str, int, int]]
"""column -> (text, line, col) for one row."""


def _csv_rows(text: str, problems: _Problems) -> list[_Cells]:
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    rows: list[_Cells] = []
    try:
        start = 1
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue
            if header is None:
                header = _csv_header(cells, line, problems)
                continue
            if len(cells) > len(header):
                extra = len(header) + 1
                problems.add(line, extra, f"row has {len(cells)} cells, header has {len(header)}")
            if "target" not in header:
                continue
            rows.append(
                {
                    name: (cells[i] if i < len(cells) else "", line, i + 1)
                    for i, name in enumerate(header)
                    if name
                }
            )
    except csv.Error as exc:
        problems.add(reader.line_num, 1, f"malformed CSV: {exc}")
    if header is None:
        problems.add(1, 1, "the sheet is empty (a header row target,source,... is required)")
    return rows


def _csv_header(cells: list[str], line: int, problems: _Problems) -> list[str]:
    header: list[str] = []
    for index, cell in enumerate(cells):
        name = cell.strip().lower()
        if name not in COLUMNS:
            problems.add(line, index + 1, _unknown_column(name))
            name = ""
        elif name in header:
            problems.add(line, index + 1, f"column {name!r} appears twice")
            name = ""
        header.append(name)
    if "target" not in header:
        problems.add(line, 1, "the header has no 'target' column")
    return header


def _unknown_column(name: str) -> str:
    close = difflib.get_close_matches(name, COLUMNS, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown column {name!r}{hint}; columns are {', '.join(COLUMNS)}"


def _yaml_rows(text: str, problems: _Problems) -> tuple[list[_Cells], str | None]:
    yaml = bounded_yaml()  # nesting deeper than MAX_DEPTH is refused as it is scanned
    try:
        check_nodes(yaml.compose(text), problems.path)
        data = yaml.load(text)
    except ConfigError as exc:  # a tag, an alias bomb: refused before loading
        for problem in exc.problems:
            problems.add(problem.line, problem.col, problem.message)
        return [], None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problems.add(line, col, f"YAML syntax error: {exc.problem or exc.context}")
        return [], None
    except YAMLError as exc:  # e.g. a control character (ReaderError): no mark, a position
        offset = getattr(exc, "position", 0)
        offset = offset if isinstance(offset, int) else 0
        line = text.count("\n", 0, offset) + 1
        col = offset - (text.rfind("\n", 0, offset) + 1) + 1
        problems.add(line, col, f"YAML error: {exc}".splitlines()[0])
        return [], None
    description = None
    if isinstance(data, dict) and "fields" in data:
        for key in data:
            if key not in ("fields", "description"):
                line, col = _yaml_position(data, key)
                problems.add(line, col, f"unknown key {key!r}; a sheet has fields and description")
        description = data.get("description")
        data = data.get("fields")
    if not isinstance(data, list):
        problems.add(1, 1, "a YAML sheet is a list of fields, or a mapping with fields: [...]")
        return [], None
    rows: list[_Cells] = []
    for index, item in enumerate(data):
        item_line, item_col = data.lc.item(index) if hasattr(data, "lc") else (0, 0)
        if not isinstance(item, dict):
            problems.add(item_line + 1, item_col + 1, "each field is a mapping (target: ...)")
            continue
        cells: _Cells = {}
        for key, value in item.items():
            line, col = _yaml_position(item, key)
            if key not in COLUMNS:
                problems.add(line, col, _unknown_column(str(key)))
            elif isinstance(value, dict | list):
                problems.add(line, col, f"{key} must be a single value")
            else:
                cells[key] = (_yaml_text(value), line, col)
        cells.setdefault("target", ("", item_line + 1, item_col + 1))
        rows.append(cells)
    return rows, None if description is None else str(description)


def _yaml_position(node: Any, key: Any) -> tuple[int, int]:
    if hasattr(node, "lc"):
        line, col = node.lc.value(key)
        return line + 1, col + 1
    return 1, 1


def _yaml_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


_SEGMENT = re.compile(r"^\S(?:[^.]*\S)?$")


def _row(cells: _Cells, problems: _Problems) -> SheetRow | None:
    target, line, col = cells["target"]
    target = target.strip()
    row_line = min(cell_line for _, cell_line, _ in cells.values())
    ok = True
    if not target:
        problems.add(line, col, "target is empty")
        ok = False
    elif not all(_SEGMENT.match(segment) for segment in target.split(".")):
        problems.add(line, col, f"bad target path {target!r}: empty segment or stray blanks")
        ok = False
    elif target.count(".") >= DEFAULT_MAX_DEPTH:
        problems.add(line, col, f"target path nests deeper than {DEFAULT_MAX_DEPTH} levels")
        ok = False
    required_text, required_line, required_col = cells.get("required", ("", line, col))
    required_value = required_text.strip().lower()
    if required_value not in _YES | _NO:
        problems.add(
            required_line, required_col, f"required must be yes or no, not {required_text!r}"
        )
        ok = False
    if not ok:
        return None
    return SheetRow(
        target=target,
        source=cells.get("source", ("", 0, 0))[0].strip(),
        transform=cells.get("transform", ("", 0, 0))[0].strip(),
        required=required_value in _YES,
        note=cells.get("note", ("", 0, 0))[0].strip(),
        line=row_line,
        positions={name: (cell_line, cell_col) for name, (_, cell_line, cell_col) in cells.items()},
    )


def _check_targets(rows: Iterable[SheetRow], problems: _Problems) -> None:
    seen: dict[str, SheetRow] = {}
    for row in rows:
        line, col = row.position("target")
        if row.target in seen:
            problems.add(
                line,
                col,
                f"target {row.target!r} is mapped twice (first on line {seen[row.target].line})",
            )
            continue
        prefixes = _prefixes(row.target)
        for other in seen.values():
            if other.target in prefixes or row.target in _prefixes(other.target):
                problems.add(
                    line,
                    col,
                    f"target {row.target!r} conflicts with {other.target!r} "
                    f"(line {other.line}): a field cannot be both a value and an object",
                )
                break
        seen[row.target] = row


def _prefixes(target: str) -> set[str]:
    parts = target.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}
