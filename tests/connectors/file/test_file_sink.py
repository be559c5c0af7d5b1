"""The file sink: append with fsync, atomic per-message files, per-message errors."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from lxml import etree
from pydantic import ValidationError

from dovetail.core.ack import Settlement
from dovetail.core.envelope import Envelope
from dovetail.errors import PermanentError, TransientError


def envelopes(*payloads: Any) -> list[Envelope]:
    return [Envelope(payload=p, settlement=Settlement()) for p in payloads]


async def write_batches(sink: Any, *batches: list[Any]) -> list[list[BaseException | None]]:
    await sink.open()
    results = [await sink.write(envelopes(*batch)) for batch in batches]
    await sink.close()
    return results


def test_jsonl_append_writes_one_line_per_message_across_batches(kit: Any) -> None:
    sink = kit.sink("file: {path: outbox/orders.jsonl}")
    results = asyncio.run(write_batches(sink, [{"id": 1}, {"id": 2}], [{"id": 3, "x": "é"}]))
    assert results == [[None, None], [None]]
    lines = (kit.project / "outbox/orders.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line) for line in lines] == [{"id": 1}, {"id": 2}, {"id": 3, "x": "é"}]


def test_csv_append_writes_the_header_only_when_creating_the_file(kit: Any) -> None:
    first = kit.sink("file: {path: out/o.csv}")
    asyncio.run(write_batches(first, [{"id": 1, "name": "Ann"}], [{"id": 2, "name": "B,ob"}]))
    second = kit.sink("file: {path: out/o.csv}")  # a restart: columns come from the header
    results = asyncio.run(write_batches(second, [{"name": "Cy", "id": 3}, {"id": 4}]))
    assert results == [[None, None]]
    text = (kit.project / "out/o.csv").read_bytes().decode()
    assert text == 'id,name\r\n1,Ann\r\n2,"B,ob"\r\n3,Cy\r\n4,\r\n'


def test_csv_rows_that_cannot_be_written_fail_alone(kit: Any) -> None:
    sink = kit.sink("file: {path: out/o.csv, fieldnames: [id, total]}")
    (results,) = asyncio.run(
        write_batches(
            sink, [{"id": 1, "total": 2}, {"id": 2, "lines": [1]}, {"id": 3, "total": {}}]
        )
    )
    assert results[0] is None
    assert isinstance(results[1], PermanentError)
    assert "are not columns" in str(results[1])
    assert isinstance(results[2], PermanentError)
    assert "flat values" in str(results[2])
    assert (kit.project / "out/o.csv").read_bytes().decode() == "id,total\r\n1,2\r\n"


def test_per_message_files_are_named_by_jsonata_and_rewrites_are_idempotent(kit: Any) -> None:
    sink = kit.sink("""file: {path: outbox/orders, filename: '"order-" & order_id & ".json"'}""")
    results = asyncio.run(
        write_batches(
            sink,
            [{"order_id": "A1", "total": 1}, {"order_id": "B2", "total": 2}],
            [{"order_id": "A1", "total": 1}],
        )
    )
    assert results == [[None, None], [None]]
    folder = kit.project / "outbox/orders"
    assert sorted(p.name for p in folder.iterdir()) == ["order-A1.json", "order-B2.json"]
    assert orjson.loads((folder / "order-A1.json").read_bytes()) == {"order_id": "A1", "total": 1}


def test_per_message_file_name_may_not_leave_the_folder(kit: Any) -> None:
    sink = kit.sink("file: {path: outbox, filename: name}")
    (results,) = asyncio.run(
        write_batches(
            sink,
            [{"name": "../escape.json"}, {"name": "/etc/x"}, {"name": "sub/ok.json"}, {"x": 1}],
        )
    )
    assert [type(r).__name__ for r in results[:2]] == ["PathEscapeError", "PathEscapeError"]
    assert results[2] is None
    assert isinstance(results[3], PermanentError)
    assert "expected a non-empty string" in str(results[3])
    assert (kit.project / "outbox/sub/ok.json").exists()
    assert not (kit.project / "escape.json").exists()


def test_per_message_xml_and_csv_documents(kit: Any) -> None:
    xml_sink = kit.sink("file: {path: out/xml, format: xml, record: Order, filename: id & '.xml'}")
    csv_sink = kit.sink("file: {path: out/csv, format: csv, filename: id & '.csv'}")
    payload = {"id": "7", "@kind": "web", "Line": [{"@sku": "X", "#text": "2"}, {"qty": 3}]}
    (xml_results,) = asyncio.run(write_batches(xml_sink, [payload, {"id": "8", "bad key": 1}]))
    (csv_results,) = asyncio.run(write_batches(csv_sink, [{"id": "9", "total": 1.5}]))
    assert xml_results[0] is None
    assert isinstance(xml_results[1], PermanentError)
    root = etree.fromstring((kit.project / "out/xml/7.xml").read_bytes())
    assert root.tag == "Order"
    assert root.get("kind") == "web"
    assert [line.get("sku") for line in root.findall("Line")] == ["X", None]
    assert csv_results == [None]
    assert (kit.project / "out/csv/9.csv").read_bytes().decode() == "id,total\r\n9,1.5\r\n"


def test_file_system_errors_are_transient(kit: Any) -> None:
    (kit.project / "outbox/orders.jsonl").mkdir(parents=True)  # a folder where the file goes
    sink = kit.sink("file: {path: outbox/orders.jsonl}")
    (results,) = asyncio.run(write_batches(sink, [{"id": 1}, {"id": 2}]))
    assert all(isinstance(r, TransientError) for r in results)
    (kit.project / "per/a.json").mkdir(parents=True)
    per_message = kit.sink("file: {path: per, filename: name}")
    (results,) = asyncio.run(write_batches(per_message, [{"name": "a.json"}, {"name": "b.json"}]))
    assert isinstance(results[0], TransientError)
    assert results[1] is None
    assert not [p for p in (kit.project / "per").iterdir() if p.name.endswith(".tmp")]


def test_payload_that_is_not_json_serialisable_is_permanent(kit: Any) -> None:
    sink = kit.sink("file: {path: out/o.jsonl}")
    (results,) = asyncio.run(write_batches(sink, [{"n": {1, 2}}, {"n": 1}]))
    assert isinstance(results[0], PermanentError)
    assert results[1] is None


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("file: {path: out/o.json}", "cannot be appended to"),
        ("file: {path: out/o.xml, mode: append}", "cannot be appended to"),
        ("file: {path: out, mode: per_message}", "filename is required"),
        ("file: {path: out/o.jsonl, mode: append, filename: id}", "filename only applies"),
        ("file: {path: out/o.txt}", "format is required"),
        ("file: {path: out/o.jsonl, delimiter: ';'}", "only apply to format csv"),
        ("file: {path: out, filename: '\"a\" &'}", "JSONata syntax error"),
    ],
)
def test_inconsistent_sink_config_is_refused(kit: Any, snippet: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        kit.sink(snippet)
    assert message in str(info.value)


def test_utf8_sig_writes_one_byte_order_mark_per_file(kit: Any) -> None:
    appended = kit.sink("file: {path: out/o.csv, encoding: utf-8-sig}")
    asyncio.run(write_batches(appended, [{"id": 1}], [{"id": 2}]))
    assert (kit.project / "out/o.csv").read_bytes() == b"\xef\xbb\xbfid\r\n1\r\n2\r\n"
    again = kit.sink("file: {path: out/o.csv, encoding: utf-8-sig}")
    asyncio.run(write_batches(again, [{"id": 3}]))
    assert (kit.project / "out/o.csv").read_bytes().count(b"\xef\xbb\xbf") == 1
    per_file = kit.sink("file: {path: per, format: csv, encoding: utf-8-sig, filename: id}")
    asyncio.run(write_batches(per_file, [{"id": "x", "n": 1}]))
    assert (kit.project / "per/x").read_bytes() == b"\xef\xbb\xbfid,n\r\nx,1\r\n"


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        (".", "filename '.' names a folder, not a file"),
        ("..", "filename must not contain '..'"),
        ("sub/", "filename 'sub/' names a folder, not a file"),
        ("sub/.", "filename 'sub/.' names a folder, not a file"),
        ("a" * 300, "filename has a part of 300 bytes; file names are limited to 255 bytes"),
        ("é" * 128, "filename has a part of 256 bytes; file names are limited to 255 bytes"),
        ("a\x00b", "filename contains a NUL character"),
    ],
)
def test_file_names_that_can_never_be_written_are_permanent_failures_naming_the_problem(
    kit: Any, name: str, problem: str
) -> None:
    sink = kit.sink("file: {path: out/, format: json, filename: name}")
    ((result, good),) = asyncio.run(write_batches(sink, [{"name": name}, {"name": "ok.json"}]))
    assert isinstance(result, PermanentError) and not isinstance(result, TransientError)
    assert problem in str(result)
    assert good is None
    assert sorted(p.name for p in (kit.project / "out").iterdir()) == ["ok.json"]
