"""Code tables: parsing, errors with positions, and the reload-on-change cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dovetail.mapping.lookup_table import LookupTableError, load_table


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_first_column_is_the_key_and_cells_are_trimmed(tmp_path):
    table = load_table(_write(tmp_path / "t.csv", "\ufeffcode , name\n A , Alpha \n\nB,Beta\n"))
    assert table.columns == ("code", "name")
    assert table.rows == {"A": {"code": "A", "name": "Alpha"}, "B": {"code": "B", "name": "Beta"}}
    assert table.value_column(None) == "name"
    assert table.values("name") == {"A": "Alpha", "B": "Beta"}
    assert "A" in table
    assert len(table) == 2


def test_key_column_may_be_named(tmp_path):
    table = load_table(_write(tmp_path / "t.csv", "name,code\nAlpha,A\n"), key_column="code")
    assert table.values("name") == {"A": "Alpha"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "t.csv:1:1: table is empty (a header row is required)"),
        ("code,,x\n", "t.csv:1:1: header has an empty column name"),
        ("a,a\n", "t.csv:1:1: header names a column twice"),
        ("code,name\nA,1\nA,2\n", "t.csv:3:1: duplicate key 'A'"),
        ("code,name\nA,1,extra\n", "t.csv:2:1: row has 3 cells, header has 2"),
    ],
)
def test_malformed_tables_are_errors_with_positions(tmp_path, text, message):
    with pytest.raises(LookupTableError) as caught:
        load_table(_write(tmp_path / "t.csv", text), name="t.csv")
    assert str(caught.value) == message


def test_missing_table_and_unknown_columns(tmp_path):
    with pytest.raises(LookupTableError, match=r"none\.csv:1:1: file not found"):
        load_table(tmp_path / "none.csv", name="none.csv")
    table = load_table(_write(tmp_path / "t.csv", "code\nA\n"), name="t.csv")
    with pytest.raises(LookupTableError, match="table has no value column besides the key"):
        table.value_column(None)
    with pytest.raises(LookupTableError, match=r"no column 'x' \(columns: code\)"):
        table.value_column("x")
    with pytest.raises(LookupTableError, match="no key column 'id'"):
        load_table(tmp_path / "t.csv", key_column="id", name="t.csv")


def test_table_is_cached_until_the_file_changes(tmp_path):
    path = _write(tmp_path / "t.csv", "code,name\nA,Alpha\n")
    first = load_table(path)
    assert load_table(path) is first
    _write(path, "code,name\nA,Alpha\nB,Beta\n")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    second = load_table(path)
    assert second is not first
    assert second.values("name") == {"A": "Alpha", "B": "Beta"}
