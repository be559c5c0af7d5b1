"""Output helpers: rich tables on a terminal, JSON with ``--json``, problems as file:line:col."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from dovetail.errors import Problem
from dovetail.observability.redaction import redact

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(value: Any) -> None:
    """Machine-readable output on stdout (secrets redacted)."""
    try:
        text = orjson.dumps(value, default=str, option=orjson.OPT_INDENT_2).decode()
    except TypeError:  # an integer beyond 64 bits, a lone surrogate: values a store may hold
        text = json.dumps(value, default=str, indent=2, ensure_ascii=True)
    sys.stdout.write(redact(text) + "\n")
    sys.stdout.flush()


def print_problems(problems: Sequence[Problem]) -> None:
    """One ``path:line:col: message`` line per problem, on stdout."""
    for problem in problems:
        sys.stdout.write(redact(str(problem)) + "\n")
    sys.stdout.flush()


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a table; cells are redacted of secrets."""
    out = Table(title=title, show_lines=False, title_justify="left")
    for column in columns:
        out.add_column(column)
    for row in rows:
        out.add_row(*(redact("" if cell is None else str(cell)) for cell in row))
    console.print(out)


def fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {redact(message)}")
