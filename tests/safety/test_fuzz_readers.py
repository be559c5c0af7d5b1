"""Fuzzing the file readers: arbitrary bytes and broken-but-plausible documents never crash or
hang a reader; every bad input is a poison or fatal record whose reason says where."""

from __future__ import annotations

import csv
import io
import re
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dovetail.connectors.file.formats import ReaderOptions, Record
from dovetail.connectors.file.readers import read_records
from dovetail.safety.limits import Limits

FUZZ = settings(
    max_examples=120,
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SMALL = Limits(max_record_bytes=2048, max_file_bytes=16 * 1024, max_depth=8)
OPTIONS = {
    "csv": ReaderOptions(format="csv", limits=SMALL),
    "csv-noheader": ReaderOptions(
        format="csv", header=False, fieldnames=("a", "b", "c"), limits=SMALL
    ),
    "jsonl": ReaderOptions(format="jsonl", limits=SMALL),
    "json": ReaderOptions(format="json", limits=SMALL),
    "xml": ReaderOptions(format="xml", record="rec", limits=SMALL),
    "fixed": ReaderOptions(format="fixed", columns=(("a", 3), ("b", 5)), limits=SMALL),
    "latin-1": ReaderOptions(format="csv", encoding="latin-1", limits=SMALL),
}
POSITION = re.compile(r"^(line \d+|element \d+|document)[: ]")
FILE_POSITION = re.compile(r"line \d+|column \d+|char \d+")


def read_bytes(data: bytes, options: ReaderOptions) -> list[Record]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input"
        path.write_bytes(data)
        return list(read_records(path, options))


def check_records(records: list[Record]) -> None:
    """The contract every reader keeps, whatever it was given."""
    for index, record in enumerate(records):
        if record.fatal:
            assert index == len(records) - 1, "nothing follows a fatal record"
            assert record.error
            if "not well-formed" in record.error or "invalid JSON document" in record.error:
                assert FILE_POSITION.search(record.error), record.error
        elif record.error is not None:
            assert POSITION.match(record.error), record.error
            assert record.line is not None or record.error.startswith(("element", "document"))
            assert isinstance(record.payload, str)
            assert len(record.payload) <= 70 * 1024
        else:
            assert isinstance(record.payload, dict)


@pytest.mark.parametrize("name", sorted(OPTIONS))
@FUZZ
@given(data=st.binary(max_size=4096))
def test_arbitrary_bytes_never_crash_a_reader(name: str, data: bytes) -> None:
    check_records(read_bytes(data, OPTIONS[name]))


@pytest.mark.parametrize("name", ["csv", "jsonl", "json", "xml", "fixed"])
@FUZZ
@given(text=st.text(max_size=2000))
def test_arbitrary_text_never_crashes_a_reader(name: str, text: str) -> None:
    check_records(read_bytes(text.encode("utf-8", "surrogatepass"), OPTIONS[name]))


# --- structured, then broken ----------------------------------------------------------------

CELL = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12)
ROWS = st.lists(st.lists(CELL, min_size=3, max_size=3), min_size=1, max_size=12)
SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.text(max_size=8)
)
JSON_VALUE = st.recursive(
    SCALAR,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
OBJECTS = st.lists(st.dictionaries(st.text(max_size=5), JSON_VALUE, max_size=4), max_size=6)


def csv_document(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # like the file sink: quotes a bare CR
    writer.writerow(["a", "b", "c"])
    writer.writerows(rows)
    return out.getvalue().encode()


def xml_document(objects: list[dict[str, Any]]) -> bytes:
    parts = ["<?xml version='1.0'?><root>"]
    for item in objects:
        parts.append("<rec>")
        for index, value in enumerate(item.values()):
            text = orjson.dumps(value).decode().replace("&", "&amp;").replace("<", "&lt;")
            parts.append(f"<f{index}>{text}</f{index}>")
        parts.append("</rec>\n")
    parts.append("</root>")
    return "".join(parts).encode()


@st.composite
def broken(draw: st.DrawFn, document: bytes) -> bytes:
    """``document`` with a few random cuts, insertions and deletions."""
    data = bytearray(document)
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        where = draw(st.integers(min_value=0, max_value=len(data)))
        action = draw(st.sampled_from(["cut", "insert", "delete"]))
        if action == "cut":
            del data[where:]
        elif action == "insert":
            data[where:where] = draw(
                st.sampled_from([b'"', b",", b"\n", b"<", b"{", b"]", b"\xff", b"&x;", b"\x00"])
            )
        else:
            del data[where : where + draw(st.integers(min_value=1, max_value=8))]
    return bytes(data)


def generated(kind: str) -> st.SearchStrategy[bytes]:
    if kind == "csv":
        return ROWS.map(csv_document)
    if kind == "jsonl":
        return OBJECTS.map(lambda items: b"\n".join(orjson.dumps(item) for item in items))
    if kind == "json":
        return OBJECTS.map(orjson.dumps)
    return OBJECTS.map(xml_document)


@pytest.mark.parametrize("kind", ["csv", "jsonl", "json", "xml"])
@FUZZ
@given(data=st.data())
def test_broken_documents_give_positioned_errors_and_never_crash(
    kind: str, data: st.DataObject
) -> None:
    document = data.draw(generated(kind).flatmap(broken))
    check_records(read_bytes(document, OPTIONS[kind]))


@FUZZ
@given(rows=ROWS)
def test_csv_written_by_the_csv_module_reads_back_exactly(rows: list[list[str]]) -> None:
    records = read_bytes(csv_document(rows), OPTIONS["csv"])
    expected = [dict(zip("abc", row, strict=True)) for row in rows]
    assert all(record.error is None for record in records)
    assert [record.payload for record in records] == expected


@FUZZ
@given(items=OBJECTS)
def test_json_lines_read_back_exactly_within_the_depth_limit(
    items: list[dict[str, object]],
) -> None:
    document = b"\n".join(orjson.dumps(item) for item in items)
    records = read_bytes(document, ReaderOptions(format="jsonl"))
    assert [record.payload for record in records] == items


@FUZZ
@given(rows=ROWS, bad=st.integers(min_value=0, max_value=11))
def test_a_broken_csv_row_names_its_line_and_the_rows_after_it_survive(
    rows: list[list[str]], bad: int
) -> None:
    rows = [[cell.replace("\n", " ").replace("\r", " ") for cell in row] for row in rows]
    bad %= len(rows)
    lines = csv_document(rows).decode().split("\r\n")
    lines[bad + 1] += ",extra"
    records = read_bytes("\r\n".join(lines).encode(), OPTIONS["csv"])
    errors = [record for record in records if record.error]
    assert [record.line for record in errors] == [bad + 2]
    assert errors[0].error is not None and errors[0].error.startswith(f"line {bad + 2}: ")
    assert len(records) == len(rows)
