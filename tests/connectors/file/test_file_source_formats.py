"""The file source reads each format correctly, with positions, and rejects bad records."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from dovetail.core.envelope import Envelope, Failure, SourcePosition


def failure_of(envelope: Envelope) -> Failure:
    assert envelope.failure is not None
    return envelope.failure


def position_of(envelope: Envelope) -> SourcePosition:
    assert envelope.position is not None
    return envelope.position


def payloads(envelopes: list[Envelope]) -> list[Any]:
    return [e.payload for e in envelopes if e.failure is None]


def failures(envelopes: list[Envelope]) -> list[Envelope]:
    return [e for e in envelopes if e.failure is not None]


def test_csv_rows_become_messages_with_file_line_and_record_index(kit: Any) -> None:
    kit.write(
        "inbox/orders.csv",
        'order_id,note,total\r\n1,plain,10\r\n\r\n2,"two\nlines",20\r\n3,"a ""q""",30\r\n',
    )
    envelopes = asyncio.run(kit.read(kit.source("file: {path: inbox/*.csv}")))
    assert payloads(envelopes) == [
        {"order_id": "1", "note": "plain", "total": "10"},
        {"order_id": "2", "note": "two\nlines", "total": "20"},
        {"order_id": "3", "note": 'a "q"', "total": "30"},
    ]
    positions = [
        (position_of(e).ref, position_of(e).line, position_of(e).offset) for e in envelopes
    ]
    assert positions == [
        ("inbox/orders.csv", 2, 0),
        ("inbox/orders.csv", 4, 1),
        ("inbox/orders.csv", 6, 2),
    ]
    assert len({e.correlation_id for e in envelopes}) == 3


def test_csv_options_delimiter_headerless_fieldnames_and_bom(kit: Any) -> None:
    kit.write("in/a.csv", "\ufeffid;name\n7;Ann\n".encode())
    kit.write("in2/b.txt", "8|Bob\n9|Cy\n")
    first = asyncio.run(
        kit.read(kit.source("file: {path: in/*.csv, delimiter: ';', encoding: utf-8-sig}"))
    )
    assert payloads(first) == [{"id": "7", "name": "Ann"}]
    kit.write("in3/c.csv", "\ufeffid\n1\n".encode())
    default = asyncio.run(kit.read(kit.source("file: {path: in3/*.csv}")))
    assert payloads(default) == [{"id": "1"}], "a UTF-8 byte order mark is skipped by default"
    second = asyncio.run(
        kit.read(
            kit.source(
                "file: {path: in2/*.txt, format: csv, delimiter: '|', header: false,"
                " fieldnames: [id, name]}"
            )
        )
    )
    assert payloads(second) == [{"id": "8", "name": "Bob"}, {"id": "9", "name": "Cy"}]


def test_csv_in_latin1_is_decoded(kit: Any) -> None:
    kit.write("in/a.csv", "name\nJosé\n".encode("latin-1"))
    envelopes = asyncio.run(kit.read(kit.source("file: {path: in/a.csv, encoding: latin-1}")))
    assert payloads(envelopes) == [{"name": "José"}]


def test_poison_csv_rows_are_failed_envelopes_and_the_file_continues(kit: Any) -> None:
    kit.write(
        "in/a.csv",
        b"a,b\n1,2\n3,4,5\n\xff\xfe,6\n7,8\n" + b"9," + b"x" * 300 + b"\n10,11\n",
    )
    source = kit.source("file: {path: in/a.csv, max_record_bytes: 200}")
    envelopes = asyncio.run(kit.read(source))
    assert payloads(envelopes) == [
        {"a": "1", "b": "2"},
        {"a": "7", "b": "8"},
        {"a": "10", "b": "11"},
    ]
    bad = failures(envelopes)
    assert [failure_of(e).reason for e in bad] == [
        "line 3: expected 2 fields, found 3",
        "line 4: not valid utf-8 (byte 0xff at column 1)",
        "line 6: record larger than the limit of 200 bytes (max_record_bytes)",
    ]
    assert all(failure_of(e).step == "source" and failure_of(e).permanent for e in bad)
    assert all(failure_of(e).error_class == "PayloadRejected" for e in bad)
    assert bad[0].payload == "3,4,5\n"
    assert bad[1].payload.endswith(",6\n")
    assert [position_of(e).line for e in bad] == [3, 4, 6]
    assert [position_of(e).offset for e in envelopes] == list(range(6))


def test_a_row_with_a_long_multi_line_field_is_reported_at_the_line_it_starts(kit: Any) -> None:
    big = '2,"' + "y\n" * 150 + '"\n'  # a quoted field over 150 lines, over the limit
    rows = ["id,note\n", '1,"a\nb"\n', big, '3,"c\n\xff"\n', "4," + "z" * 300 + "\n", "5,ok\n"]
    kit.write("in/a.csv", "".join(rows).encode("latin-1"))
    envelopes = asyncio.run(kit.read(kit.source("file: {path: in/a.csv, max_record_bytes: 200}")))
    assert payloads(envelopes) == [{"id": "1", "note": "a\nb"}, {"id": "5", "note": "ok"}]
    crossed, taken = 4, 0  # the physical line on which the row passes 200 bytes
    for line in big.splitlines(keepends=True):
        taken += len(line)
        if taken > 200:
            break
        crossed += 1
    bad = failures(envelopes)
    assert [failure_of(e).reason for e in bad] == [
        "line 4: record larger than the limit of 200 bytes (max_record_bytes),"
        f" reached on line {crossed}",
        "line 155: not valid utf-8 (byte 0xff at column 1 on line 156)",
        "line 157: record larger than the limit of 200 bytes (max_record_bytes)",
    ]
    assert [position_of(e).line for e in envelopes] == [2, 4, 155, 157, 158]


def test_a_quote_never_closed_does_not_swallow_the_rest_of_the_file_silently(kit: Any) -> None:
    kit.write("in/a.csv", 'id,note\n1,ok\n2,"cut off\n3,x\n4,y\n')
    envelopes = asyncio.run(kit.read(kit.source("file: {path: in/a.csv}")))
    assert payloads(envelopes) == [{"id": "1", "note": "ok"}]
    (bad,) = failures(envelopes)
    assert failure_of(bad).reason == (
        "line 3: malformed CSV: a quoted field is never closed; it runs to the end of the file"
        " on line 5"
    )
    assert bad.payload == '2,"cut off\n3,x\n4,y\n' and position_of(bad).line == 3


def test_stray_and_doubled_quotes_are_still_read(kit: Any) -> None:
    kit.write("in/a.csv", 'id,note\n1,x"y\n2,"a""b"\n3,"last"')
    envelopes = asyncio.run(kit.read(kit.source("file: {path: in/a.csv}")))
    assert payloads(envelopes) == [
        {"id": "1", "note": 'x"y'},
        {"id": "2", "note": 'a"b'},
        {"id": "3", "note": "last"},
    ]


def test_csv_header_that_cannot_be_read_fails_the_whole_file(kit: Any) -> None:
    kit.write("in/a.csv", "id,id\n1,2\n")
    (envelope,) = asyncio.run(kit.read(kit.source("file: {path: in/a.csv}")))
    assert envelope.failure is not None
    assert "repeats column" in failure_of(envelope).reason
    assert envelope.payload == {"file": "in/a.csv", "error": failure_of(envelope).reason}


def test_jsonl_lines_stream_and_bad_lines_are_rejected_precisely(kit: Any) -> None:
    deep = {"a": [[[[{"b": 1}]]]]}
    lines = [
        b'{"id": 1}',
        b"",
        b'{"id": 2, "nested": {"x": [1, 2]}}',
        b"{not json",
        b"[1, 2]",
        orjson.dumps(deep),
        b'{"id": 3}',
    ]
    kit.write("in/e.jsonl", b"\n".join(lines) + b"\n")
    envelopes = asyncio.run(kit.read(kit.source("file: {path: in/*.jsonl, max_depth: 4}")))
    assert payloads(envelopes) == [{"id": 1}, {"id": 2, "nested": {"x": [1, 2]}}, {"id": 3}]
    reasons = [failure_of(e).reason for e in failures(envelopes)]
    assert reasons[0].startswith("line 4: invalid JSON: ")
    assert reasons[1] == "line 5: expected a JSON object, found an array"
    assert reasons[2] == "line 6: nesting deeper than the limit of 4 levels (max_depth)"
    assert [e.payload for e in failures(envelopes)][:2] == ["{not json", "[1, 2]"]
    assert [position_of(e).line for e in envelopes] == [1, 3, 4, 5, 6, 7]


def test_json_array_gives_one_message_per_element_and_object_one(kit: Any) -> None:
    kit.write("in/list.json", b'[{"id": 1}, {"id": 2}, 3]')
    kit.write("in/one.json", b'{"id": 9}')
    envelopes = asyncio.run(kit.read(kit.source("file: {path: in/*.json}")))
    assert payloads(envelopes) == [{"id": 1}, {"id": 2}, {"id": 9}]
    (bad,) = failures(envelopes)
    assert failure_of(bad).reason == "element 2: expected a JSON object, found a number"
    assert [position_of(e).ref for e in envelopes] == ["in/list.json"] * 3 + ["in/one.json"]


def test_json_document_that_does_not_parse_is_one_failed_envelope(kit: Any) -> None:
    kit.write("in/bad.json", b'[{"id": 1}, ')
    (envelope,) = asyncio.run(kit.read(kit.source("file: {path: in/bad.json}")))
    assert failure_of(envelope).reason.startswith("invalid JSON document: ")
    assert envelope.payload["file"] == "in/bad.json"


def test_json_file_over_max_file_bytes_is_refused_unread(kit: Any) -> None:
    kit.write("in/big.json", b"[" + b'{"id": 1},' * 200 + b'{"id": 2}]')
    (envelope,) = asyncio.run(
        kit.read(kit.source("file: {path: in/big.json, max_file_bytes: 1KiB}"))
    )
    assert "larger than the limit of 1 KiB (max_file_bytes)" in failure_of(envelope).reason


XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<Orders xmlns="urn:shop">
  <Header><Batch>7</Batch></Header>
  <Order id="A1">
    <Customer>Ann</Customer>
    <Line sku="X">2</Line>
    <Line sku="Y">3</Line>
    <Note>Leave <b>at</b> door</Note>
    <Empty/>
  </Order>
  <!-- comment -->
  <Order id="A2"><Customer>Bob</Customer></Order>
</Orders>
"""


def test_xml_records_are_elements_converted_to_dicts(kit: Any) -> None:
    kit.write("in/orders.xml", XML)
    envelopes = asyncio.run(kit.read(kit.source("file: {path: in/*.xml, record: Order}")))
    assert payloads(envelopes) == [
        {
            "@id": "A1",
            "Customer": "Ann",
            "Line": [{"@sku": "X", "#text": "2"}, {"@sku": "Y", "#text": "3"}],
            "Note": {"b": "at", "#text": "Leave door"},
            "Empty": None,
        },
        {"@id": "A2", "Customer": "Bob"},
    ]
    assert [position_of(e).line for e in envelopes] == [4, 12]
    qualified = kit.source("""file: {path: in/*.xml, record: "{urn:shop}Order"}""")
    assert payloads(asyncio.run(kit.read(qualified))) == payloads(envelopes)
    other_namespace = kit.source("""file: {path: in/*.xml, record: "{urn:other}Order"}""")
    assert asyncio.run(kit.read(other_namespace)) == []


def test_xml_entities_are_not_expanded_and_external_files_not_read(kit: Any) -> None:
    secret = kit.write("secret.txt", "TOP-SECRET")
    document = f"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">
<!ENTITY xxe SYSTEM "file://{secret}">]>
<r><item><v>&lol2;</v><w>&xxe;</w></item></r>""".encode()
    kit.write("in/evil.xml", document)
    envelopes = asyncio.run(kit.read(kit.source("file: {path: in/evil.xml, record: item}")))
    text = orjson.dumps([e.payload for e in envelopes]).decode()
    assert "TOP-SECRET" not in text
    assert "lollol" not in text


def test_xml_record_over_limits_is_rejected_and_the_file_continues(kit: Any) -> None:
    deep = "<a>" * 10 + "x" + "</a>" * 10
    big = "<v>" + "y" * 500 + "</v>"
    kit.write("in/r.xml", f"<rs>\n<r>{deep}</r>\n<r>{big}</r>\n<r><v>ok</v></r>\n</rs>")
    source = kit.source("file: {path: in/r.xml, record: r, max_depth: 5, max_record_bytes: 200}")
    envelopes = asyncio.run(kit.read(source))
    assert payloads(envelopes) == [{"v": "ok"}]
    assert [failure_of(e).reason for e in failures(envelopes)] == [
        "line 2: record nests deeper than the limit of 5 levels (max_depth)",
        "line 3: record larger than the limit of 200 bytes (max_record_bytes)",
    ]


def test_xml_not_well_formed_fails_the_rest_of_the_file(kit: Any) -> None:
    kit.write("in/r.xml", b"<rs><r><v>1</v></r><r><v>2</v></r><r><oops></r></rs>")
    envelopes = asyncio.run(kit.read(kit.source("file: {path: in/r.xml, record: r}")))
    assert payloads(envelopes)[:2] == [{"v": "1"}, {"v": "2"}]
    (bad,) = failures(envelopes)
    assert "XML is not well-formed" in failure_of(bad).reason
    assert bad.payload["file"] == "in/r.xml"


def test_an_xml_file_with_a_doctype_is_one_failure_and_no_attribute_is_expanded(
    kit: Any,
) -> None:
    kit.write(
        "in/r.xml",
        b'<!DOCTYPE rs [<!ENTITY i "INTERNAL">]>\n<rs>\n<r a="&i;"><v>1</v></r>\n</rs>\n',
    )
    envelopes = asyncio.run(kit.read(kit.source("file: {path: in/r.xml, record: r}")))
    (bad,) = envelopes
    assert failure_of(bad).permanent
    assert failure_of(bad).reason.startswith("line 2: the document has a DOCTYPE declaration")
    assert "INTERNAL" not in str(bad.payload) and bad.payload["file"] == "in/r.xml"


def test_fixed_width_lines_are_cut_into_columns(kit: Any) -> None:
    kit.write("in/f.txt", "0001Ann       12.50\n0002Bob\n0003Cy        1.00EXTRA\n")
    source = kit.source(
        "file: {path: in/f.txt, format: fixed,"
        " columns: [{name: id, width: 4}, {name: name, width: 10}, {name: amount, width: 5}]}"
    )
    envelopes = asyncio.run(kit.read(source))
    assert payloads(envelopes) == [
        {"id": "0001", "name": "Ann", "amount": "12.50"},
        {"id": "0002", "name": "Bob", "amount": ""},
    ]
    assert (
        failure_of(failures(envelopes)[0]).reason
        == "line 3: expected at most 19 characters, found 23"
    )


def test_utf16_file_is_refused_with_a_clear_reason(kit: Any) -> None:
    kit.write("in/w.csv", "id\n1\n".encode("utf-16"))
    (envelope,) = asyncio.run(kit.read(kit.source("file: {path: in/w.csv}")))
    assert "UTF-16" in failure_of(envelope).reason


def test_records_are_emitted_in_batches_of_the_runtime_batch_size(kit: Any) -> None:
    kit.write("in/a.jsonl", "".join(f'{{"n": {i}}}\n' for i in range(7)))
    kit.write("in/b.jsonl", '{"n": 7}\n')
    source = kit.source_with_batch_size({"path": "in/*.jsonl"}, 3)
    batches = asyncio.run(kit.drain(source))
    assert [len(b) for b in batches] == [3, 3, 2]
    assert [e.payload["n"] for b in batches for e in b] == list(range(8))


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("file: {path: inbox/orders}", "format is required"),
        ("file: {path: in/*.csv, record: Order}", "record only apply to format xml"),
        ("file: {path: in/*.xml}", "record (the element that holds one record) is required"),
        ("file: {path: in/*.csv, header: false}", "fieldnames are required"),
        ("file: {path: in/*.csv, encoding: utf-16}", "not ASCII-compatible"),
        ("file: {path: in/*.csv, encoding: nope}", "unknown encoding"),
        ("file: {path: in/*.csv, unknown: 1}", "Extra inputs are not permitted"),
        ("file: {path: in/*.txt, format: fixed}", "columns are required"),
    ],
)
def test_inconsistent_config_is_refused_at_build_time(kit: Any, snippet: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        kit.source(snippet)
    assert message in str(info.value)


def test_a_bare_path_is_the_source_shorthand(kit: Any) -> None:
    kit.write("in/a.csv", "id\n1\n")
    envelopes = asyncio.run(kit.read(kit.source("file: in/*.csv")))
    assert payloads(envelopes) == [{"id": "1"}]
