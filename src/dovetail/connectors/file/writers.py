"""Serialisers used by the file sink: a payload to the bytes of one record in a format.

Each function raises ``PermanentError`` when the payload cannot be written in the format
(a nested value in a CSV row, a non-JSON value, a key that is not an XML name).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

import orjson
from lxml import etree

from dovetail.connectors.file.xml_records import value_to_element
from dovetail.errors import PermanentError

CSV_LINE_END = "\r\n"
"""RFC 4180 line ends: the csv module then quotes every field holding CR or LF."""


def encode_json(payload: Any, *, indent: bool = False) -> bytes:
    """``payload`` as JSON (one line unless ``indent``), ending with a newline."""
    option = orjson.OPT_APPEND_NEWLINE | (orjson.OPT_INDENT_2 if indent else 0)
    try:
        return orjson.dumps(payload, option=option)
    except (orjson.JSONEncodeError, TypeError) as exc:
        if "64-bit" not in str(exc):
            raise PermanentError(f"payload cannot be written as JSON: {exc}") from None
    # orjson refuses integers past 64 bits, which JSON allows and sources accept
    try:
        text = json.dumps(
            payload,
            ensure_ascii=False,
            allow_nan=False,
            indent=2 if indent else None,
            separators=None if indent else (",", ":"),
        )
    except (TypeError, ValueError) as exc:
        raise PermanentError(f"payload cannot be written as JSON: {exc}") from None
    return text.encode("utf-8") + b"\n"


def _csv_value(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise PermanentError(
        f"field {name!r} holds {type(value).__name__}; a CSV row needs flat values"
        " (map nested data to columns first)"
    )


def csv_fieldnames(payload: Any) -> list[str]:
    """Column names taken from a payload, in its key order."""
    if not isinstance(payload, dict):
        raise PermanentError(f"a CSV row needs an object payload, found {type(payload).__name__}")
    return [str(key) for key in payload]


def encode_csv_row(
    payload: Any, fieldnames: Sequence[str], *, delimiter: str = ",", quotechar: str = '"'
) -> str:
    """One CSV row (with its line end) with the payload's values in ``fieldnames`` order.

    Keys missing from the payload are written empty; keys not among ``fieldnames`` are an
    error (the row would silently lose data).
    """
    if not isinstance(payload, dict):
        raise PermanentError(f"a CSV row needs an object payload, found {type(payload).__name__}")
    extra = [str(key) for key in payload if key not in fieldnames]
    if extra:
        raise PermanentError(f"field(s) {extra} are not columns of the CSV file {list(fieldnames)}")
    return encode_csv_header(
        [_csv_value(name, payload.get(name)) for name in fieldnames],
        delimiter=delimiter,
        quotechar=quotechar,
    )


def encode_csv_header(
    fieldnames: Sequence[str], *, delimiter: str = ",", quotechar: str = '"'
) -> str:
    """One CSV line (header or row) holding ``fieldnames``, with its line end."""
    buffer = io.StringIO()
    writer = csv.writer(
        buffer, delimiter=delimiter, quotechar=quotechar, lineterminator=CSV_LINE_END
    )
    writer.writerow(fieldnames)
    return buffer.getvalue()


def encode_xml(payload: Any, record: str, *, encoding: str = "utf-8") -> bytes:
    """A standalone XML document whose root element ``record`` holds the payload."""
    try:
        element = value_to_element(record, payload)
        data = etree.tostring(element, xml_declaration=True, encoding=encoding, pretty_print=True)
    except (ValueError, LookupError) as exc:
        raise PermanentError(f"payload cannot be written as XML: {exc}") from None
    return data if isinstance(data, bytes) else data.encode(encoding)
