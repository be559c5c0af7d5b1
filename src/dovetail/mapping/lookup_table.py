"""Code tables for enrichment: CSV files under ``lookups/``, loaded once and cached.

A table is a CSV file with a header row. The key column is the first column unless another is
named; every other column is a value column. Cells are stripped of surrounding whitespace (code
tables exported from spreadsheets often carry stray blanks). Blank lines are skipped. A key that
appears twice is an error, reported with its line, because a lookup must have one answer.

Tables are cached per process by path, key column, size and modification time: a flow start
reads a table once, and a changed table is read again by the next flow start or a fresh process
(so a fixed table is picked up by a replay).
"""

from __future__ import annotations

import csv
import threading
from dataclasses import dataclass
from pathlib import Path


class LookupTableError(ValueError):
    """A code table cannot be used: missing, empty, no such column, or a duplicate key.

    ``line`` is the 1-based line of the offending row or header when known.
    """

    def __init__(self, path: str, message: str, *, line: int = 1, col: int = 1) -> None:
        super().__init__(f"{path}:{line}:{col}: {message}")
        self.path = path
        self.line = line
        self.col = col
        self.message = message


@dataclass(frozen=True, slots=True)
class LookupTable:
    """An immutable code table: ``rows[key]`` is the whole row as a dict of column -> value."""

    path: str
    columns: tuple[str, ...]
    key_column: str
    rows: dict[str, dict[str, str]]

    def value_column(self, column: str | None) -> str:
        """The column ``column`` names, or the first non-key column when ``None``.

        Raises ``LookupTableError`` when the column does not exist or the table has no value
        column.
        """
        if column is None:
            others = [c for c in self.columns if c != self.key_column]
            if not others:
                raise LookupTableError(self.path, "table has no value column besides the key")
            return others[0]
        if column not in self.columns:
            raise LookupTableError(
                self.path,
                f"no column {column!r} (columns: {', '.join(self.columns)})",
            )
        return column

    def values(self, column: str) -> dict[str, str]:
        """A flat ``key -> value`` dict for one column, for the fastest possible lookups."""
        return {key: row[column] for key, row in self.rows.items()}

    def __contains__(self, key: object) -> bool:
        return key in self.rows

    def __len__(self) -> int:
        return len(self.rows)


_CacheKey = tuple[str, str | None]
_cache: dict[_CacheKey, tuple[tuple[int, int], LookupTable]] = {}
_cache_lock = threading.Lock()


def load_table(
    path: Path, *, key_column: str | None = None, name: str | None = None
) -> LookupTable:
    """Read the code table at ``path`` (cached until the file changes).

    ``name`` is how the table is called in messages (the path as written in the flow);
    it defaults to ``path``. Raises ``LookupTableError`` for a missing or malformed table.
    """
    shown = name or str(path)
    try:
        stat = path.stat()
    except OSError:
        raise LookupTableError(shown, "file not found") from None
    cache_key: _CacheKey = (str(path.resolve()), key_column)
    version = (stat.st_mtime_ns, stat.st_size)
    with _cache_lock:
        cached = _cache.get(cache_key)
    if cached is not None and cached[0] == version and cached[1].path == shown:
        return cached[1]
    table = _read(path, key_column, shown)
    with _cache_lock:
        _cache[cache_key] = (version, table)
    return table


def _read(path: Path, key_column: str | None, shown: str) -> LookupTable:
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise LookupTableError(shown, f"cannot read: {exc.strerror}") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise LookupTableError(shown, "table is empty (a header row is required)")
            columns = tuple(cell.strip() for cell in header)
            if any(not c for c in columns):
                raise LookupTableError(shown, "header has an empty column name")
            if len(set(columns)) != len(columns):
                raise LookupTableError(shown, "header names a column twice")
            key = columns[0] if key_column is None else key_column
            if key not in columns:
                raise LookupTableError(
                    shown, f"no key column {key!r} (columns: {', '.join(columns)})"
                )
            key_index = columns.index(key)
            rows: dict[str, dict[str, str]] = {}
            for cells in reader:
                if not cells or all(not c.strip() for c in cells):
                    continue
                line = reader.line_num
                if len(cells) != len(columns):
                    raise LookupTableError(
                        shown, f"row has {len(cells)} cells, header has {len(columns)}", line=line
                    )
                values = [c.strip() for c in cells]
                code = values[key_index]
                if code in rows:
                    raise LookupTableError(
                        shown, f"duplicate key {code!r}", line=line, col=key_index + 1
                    )
                rows[code] = dict(zip(columns, values, strict=True))
        except csv.Error as exc:
            raise LookupTableError(shown, f"malformed CSV: {exc}", line=reader.line_num) from None
        except UnicodeDecodeError:
            raise LookupTableError(shown, "not UTF-8 text") from None
    return LookupTable(path=shown, columns=columns, key_column=key, rows=rows)


def clear_cache() -> None:
    """Forget every cached table (tests; a long-lived process reloading its project)."""
    with _cache_lock:
        _cache.clear()
