"""Whatever the file readers produce from any input — records and rejected raw text alike — the
store codec keeps exactly."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dovetail.connectors.file.formats import ReaderOptions
from dovetail.connectors.file.readers import read_records
from dovetail.safety.limits import Limits
from dovetail.store.codec import decode_payload, encode_payload
from tests.store.values import any_text, reader_values, same

LIMITS = Limits(max_record_bytes=4096, max_file_bytes=64 * 1024, max_depth=1000)
FORMATS = {
    "csv": ReaderOptions(format="csv", limits=LIMITS),
    "jsonl": ReaderOptions(format="jsonl", limits=LIMITS),
    "json": ReaderOptions(format="json", limits=LIMITS),
    "xml": ReaderOptions(format="xml", record="rec", limits=LIMITS),
    "latin-1": ReaderOptions(format="csv", encoding="latin-1", limits=LIMITS),
}
READ = settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])


def _json_line(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:
        return b"null"


documents = st.one_of(
    st.binary(max_size=300),
    any_text.map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.lists(reader_values, max_size=4).map(lambda rows: b"\n".join(map(_json_line, rows))),
    st.just(b"id,total\n" + b"9" * 40 + b",1e999\n\xff\xfe,NaN\n"),
    st.just(b'[{"n": 99999999999999999999999999}, {"n": -0.0}, "\\ud800x"]'),
)


@READ
@given(fmt=st.sampled_from(sorted(FORMATS)), data=documents)
def test_every_record_a_reader_produces_round_trips_through_the_codec(
    fmt: str, data: bytes
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"input.{fmt}"
        path.write_bytes(data)
        for record in read_records(path, FORMATS[fmt]):
            assert same(decode_payload(encode_payload(record.payload)), record.payload)
