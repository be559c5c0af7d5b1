"""Readers stream: memory stays bounded by one record, however large the file."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from dovetail.connectors.file.formats import ReaderOptions
from dovetail.connectors.file.readers import read_records

ROWS = 20_000
FILLER = "x" * 900


def write_large(path: Path, fmt: str) -> None:
    with path.open("w", encoding="utf-8") as stream:
        if fmt == "csv":
            stream.write("id,filler\n")
            for i in range(ROWS):
                stream.write(f"{i},{FILLER}\n")
        elif fmt == "jsonl":
            for i in range(ROWS):
                stream.write(f'{{"id": {i}, "filler": "{FILLER}"}}\n')
        else:
            stream.write("<rows>\n")
            for i in range(ROWS):
                stream.write(f'<row id="{i}"><filler>{FILLER}</filler></row>\n')
            stream.write("</rows>\n")


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "xml"])
def test_reading_a_large_file_keeps_memory_bounded(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"big.{fmt}"
    write_large(path, fmt)
    size = path.stat().st_size
    assert size > 18_000_000
    options = ReaderOptions(format=fmt, record="row" if fmt == "xml" else None)
    tracemalloc.start()
    try:
        count = 0
        last = None
        for record in read_records(path, options):
            assert record.error is None
            count += 1
            last = record
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == ROWS
    assert last is not None
    assert str(last.payload.get("id", last.payload.get("@id"))) == str(ROWS - 1)
    assert peak < size / 20, f"peak {peak} bytes while reading a {size}-byte file"
