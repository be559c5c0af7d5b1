"""Property tests: CSV and JSON Lines round-trip through sink and source; arbitrary bytes
never crash a reader; the ordered acker's watermark is the contiguous settled prefix."""

from __future__ import annotations

import asyncio
import csv
import io
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from dovetail.connectors.file.formats import ReaderOptions
from dovetail.connectors.file.progress import FileProgress, RecordAck
from dovetail.connectors.file.readers import read_csv
from dovetail.core.ack import OrderedAcker, Settlement
from dovetail.core.envelope import Envelope, Failure, SourcePosition
from dovetail.safety.limits import Limits
from dovetail.testing.components import build_component

PROPERTY = settings(max_examples=60, deadline=None)

# Any text the formats can carry: no lone surrogates (not encodable), and a header must not
# start with U+FEFF, which a reader rightly takes for a byte order mark.
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
FIELDNAMES = st.lists(
    TEXT.filter(lambda s: not s.startswith("\ufeff")), min_size=1, max_size=5, unique=True
)


def failure_of(envelope: Envelope) -> Failure:
    assert envelope.failure is not None
    return envelope.failure


def position_of(envelope: Envelope) -> SourcePosition:
    assert envelope.position is not None
    return envelope.position


async def round_trip(
    project: Path, sink_snippet: str, source_snippet: str, rows: list[Any]
) -> list[Envelope]:
    sink = build_component("sink", sink_snippet, project)
    await sink.open()
    results = await sink.write([Envelope(payload=row, settlement=Settlement()) for row in rows])
    await sink.close()
    assert results == [None] * len(rows)
    source = build_component("source", source_snippet, project)
    envelopes: list[Envelope] = []

    async def emit(batch: list[Envelope]) -> None:
        envelopes.extend(batch)

    await source.open()
    await source.run(emit)
    await source.close()
    return envelopes


@st.composite
def csv_tables(draw: st.DrawFn) -> tuple[list[str], list[dict[str, str]]]:
    names = draw(FIELDNAMES)
    rows = draw(st.lists(st.fixed_dictionaries(dict.fromkeys(names, TEXT)), max_size=8))
    return names, rows


@PROPERTY
@given(csv_tables())
def test_csv_rows_round_trip_through_sink_and_source(
    table: tuple[list[str], list[dict[str, str]]],
) -> None:
    names, rows = table
    with tempfile.TemporaryDirectory() as folder:
        envelopes = asyncio.run(
            round_trip(
                Path(folder),
                "file: {path: out/t.csv}",
                "file: {path: out/t.csv}",
                rows,
            )
        )
    if not rows:
        assert envelopes == []
        return
    assert [e.failure for e in envelopes] == [None] * len(rows)
    assert [e.payload for e in envelopes] == rows
    assert list(envelopes[0].payload) == list(rows[0])  # columns in the first row's order
    assert set(rows[0]) == set(names)


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
JSON_OBJECTS = st.dictionaries(TEXT, JSON_VALUES, max_size=5)


@PROPERTY
@given(st.lists(JSON_OBJECTS, max_size=8))
def test_jsonl_objects_round_trip_through_sink_and_source(objects: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        envelopes = asyncio.run(
            round_trip(
                Path(folder), "file: {path: out/t.jsonl}", "file: {path: out/t.jsonl}", objects
            )
        )
    assert [e.failure for e in envelopes] == [None] * len(objects)
    assert [e.payload for e in envelopes] == objects


PIECES = st.sampled_from(
    [
        b",",
        b";",
        b'"',
        b"\n",
        b"\r\n",
        b"\r",
        b" ",
        b"a",
        b"1",
        b"\xff",
        b"\xc3",
        b"\x00",
        b"{",
        b"}",
        b"[",
        b"]",
        b":",
        b"<r>",
        b"</r>",
        b"<",
        b">",
        b"&",
        b"\xef\xbb\xbf",
    ]
)
ARBITRARY_BYTES = st.binary(max_size=300) | st.lists(PIECES, max_size=80).map(b"".join)

SNIPPETS = {
    "csv": "file: {path: in/x.dat, format: csv, max_record_bytes: 64}",
    "jsonl": "file: {path: in/x.dat, format: jsonl, max_record_bytes: 64}",
    "json": "file: {path: in/x.dat, format: json, max_depth: 3}",
    "xml": "file: {path: in/x.dat, format: xml, record: r, max_depth: 3}",
    "fixed": "file: {path: in/x.dat, format: fixed, columns: [{name: a, width: 3}]}",
}


def check_arbitrary_bytes(fmt: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        (project / "in").mkdir()
        (project / "in/x.dat").write_bytes(data)
        source = build_component("source", SNIPPETS[fmt], project)
        envelopes: list[Envelope] = []

        async def scenario() -> None:
            async def emit(batch: list[Envelope]) -> None:
                envelopes.extend(batch)

            await source.open()
            await source.run(emit)
            await source.close()

        asyncio.run(scenario())
    assert [position_of(e).offset for e in envelopes] == list(range(len(envelopes)))
    for envelope in envelopes:
        if envelope.failure is None:
            assert isinstance(envelope.payload, dict)
        else:
            assert failure_of(envelope).step == "source"
            assert failure_of(envelope).error_class == "PayloadRejected"
            assert failure_of(envelope).reason


@PROPERTY
@given(ARBITRARY_BYTES)
def test_arbitrary_bytes_never_crash_the_csv_reader(data: bytes) -> None:
    check_arbitrary_bytes("csv", data)


@PROPERTY
@given(ARBITRARY_BYTES)
def test_arbitrary_bytes_never_crash_the_jsonl_reader(data: bytes) -> None:
    check_arbitrary_bytes("jsonl", data)


@settings(max_examples=30, deadline=None)
@given(ARBITRARY_BYTES, st.sampled_from(["json", "xml", "fixed"]))
def test_arbitrary_bytes_never_crash_the_other_readers(data: bytes, fmt: str) -> None:
    check_arbitrary_bytes(fmt, data)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=40).flatmap(lambda n: st.permutations(range(n))), st.data()
)
def test_watermark_is_the_contiguous_settled_prefix_in_any_order(
    order: list[int], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(order)))
    acker = OrderedAcker()
    settled: set[int] = set()
    for seq in order[:cut]:
        acker.settle_sync(seq)
        acker.settle_sync(seq)  # a duplicate settle changes nothing
        settled.add(seq)
        prefix = 0
        while prefix in settled:
            prefix += 1
        assert acker.watermark == prefix
        assert acker.outstanding == len(settled) - prefix


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=30).flatmap(lambda n: st.permutations(range(n))))
def test_record_acks_mark_the_file_dirty_only_when_the_watermark_moves(order: list[int]) -> None:
    progress = FileProgress(Path("x"), "x", 0, 0, total=len(order))

    async def scenario() -> None:
        for seq in order:
            before = progress.acker.watermark
            progress.dirty = False
            await RecordAck(progress, seq)()
            assert progress.dirty == (progress.acker.watermark != before)
        assert progress.complete

    asyncio.run(scenario())


CELL = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\x00"), max_size=40)


@PROPERTY
@given(st.lists(st.tuples(CELL, CELL), min_size=1, max_size=12), st.integers(40, 120))
@example([("x", "\n" * 30 + "y" * 80), ("z", "ok")], 40)
def test_every_csv_row_and_reason_names_the_line_the_row_starts_on(
    rows: list[tuple[str, str]], limit: int
) -> None:
    """Rows with quoted multi-line fields, some over the size limit: each record's line is the
    physical line its row starts on, and a rejected row's reason starts with that line."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(["a", "b"])
    starts = []
    for row in rows:
        starts.append(buffer.getvalue().count("\n") + 1)
        writer.writerow(row)
    data = buffer.getvalue().encode()
    options = ReaderOptions(format="csv", limits=Limits(max_record_bytes=limit))
    records = list(read_csv(io.BytesIO(data), options))
    assert [record.line for record in records] == starts
    for record, row in zip(records, rows, strict=True):
        if record.error is None:
            assert record.payload == {"a": row[0], "b": row[1]}
        else:
            assert record.error.startswith(f"line {record.line}: record larger than the limit")
