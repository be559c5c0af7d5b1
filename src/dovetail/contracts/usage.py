"""Which payload fields a flow's mappings write and read.

Used to tell which changes of a partner's API touch this flow: the targets of mapping sheets,
the keys of JSONata ``map`` object constructors, SQL sink columns and lookup ``into`` fields
are written; sheet sources, JSONata field references and SQL column expressions are read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from dovetail.config.model import Flow
from dovetail.errors import ConfigError
from dovetail.mapping.sheet_loader import load_sheet

_QUOTED_KEY = re.compile(r"""(["'])((?:(?!\1).)+)\1\s*:""")
_STRING = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'""")
_PATH = re.compile(r"(?<![\w$.])[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_PLAIN_PATH = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")
_JSONATA_WORDS = frozenset({"and", "or", "in", "true", "false", "null", "function"})


@dataclass
class FieldUsage:
    """Dotted field paths a flow writes and reads, each with where it is used."""

    written: dict[str, str] = field(default_factory=dict)
    read: dict[str, str] = field(default_factory=dict)


def field_usage(flow: Flow) -> FieldUsage:
    """The fields ``flow`` writes and reads in its map steps, lookups and SQL sinks."""
    usage = FieldUsage()
    root = flow.project_dir
    for index, ref in enumerate(flow.steps):
        config = ref.config
        if ref.spec.name == "map":
            sheet = getattr(config, "sheet", None)
            jsonata = getattr(config, "jsonata", None)
            if sheet:
                _sheet_usage(root / sheet, sheet, usage)
            elif jsonata:
                _jsonata_usage(jsonata, root, f"steps[{index}].map", usage)
        elif ref.spec.name == "lookup":
            into = getattr(config, "into", None)
            if isinstance(into, str):
                usage.written.setdefault(into, f"steps[{index}].lookup")
    for name, ref in flow.sinks.items():
        if ref.spec.name != "sql":
            continue
        for column, expression in (getattr(ref.config, "columns", None) or {}).items():
            usage.written.setdefault(str(column), f"sql sink {name!r} column {column}")
            if _PLAIN_PATH.match(str(expression).strip()):
                usage.read.setdefault(str(expression).strip(), f"sql sink {name!r} column {column}")
    return usage


def _sheet_usage(path: Path, shown: str, usage: FieldUsage) -> None:
    try:
        sheet = load_sheet(path, name=shown)
    except (ConfigError, OSError):
        return
    for row in sheet.rows:
        usage.written.setdefault(row.target, f"{shown}:{row.line}")
        if _PLAIN_PATH.match(row.source.strip()):
            usage.read.setdefault(row.source.strip(), f"{shown}:{row.line}")


def _jsonata_usage(value: str, root: Path, where: str, usage: FieldUsage) -> None:
    text = value
    if value.strip().endswith(".jsonata"):
        where = value.strip()
        try:
            text = (root / where).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return
    for match in _QUOTED_KEY.finditer(text):
        usage.written.setdefault(match.group(2), where)
    for match in _PATH.finditer(_STRING.sub('""', text)):
        path = match.group(0)
        if path.split(".", 1)[0] not in _JSONATA_WORDS:
            usage.read.setdefault(path, where)
