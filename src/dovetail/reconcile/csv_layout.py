"""Which CSV files DuckDB may read for a reconciliation, and their headers.

DuckDB's CSV parser and the file connector's reader agree on well-formed files; where they
could split a file differently (a lone carriage return, a quote beside a space, a blank line
in a one-column file, a byte-order mark, compression, another encoding), the file is not
given to the engine, so a reconciliation's report never depends on which one read it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from dovetail.connectors.file.readers import compression_of
from dovetail.reconcile.config import SideConfig
from dovetail.safety.limits import DEFAULT_MAX_RECORD_BYTES

_UTF8 = {"utf-8", "utf8", "utf_8"}


@dataclass(frozen=True, slots=True)
class CsvSide:
    """One side as the engine reads it: the file, its delimiter and its header."""

    path: Path
    delimiter: str
    header: list[str]
    names: list[str]
    """The header with the target's ``target_field`` names renamed to source names."""


def read_header(path: Path, delimiter: str) -> list[str] | None:
    """The CSV header as the file reader sees it, or None when the engine must not read it.

    None for a compressed file, a byte-order mark, a blank, quoted or multi-line first
    line, fewer than two columns, a repeated column name, a layout the two parsers could
    split differently (``plain_layout``), or a file that does not open or decode.
    """
    try:
        with path.open("rb") as raw:
            head = raw.read(8)
            if not head or compression_of(head) is not None or head.startswith(b"\xef\xbb\xbf"):
                return None
        with path.open(encoding="utf-8", newline="") as handle:
            first = handle.readline(DEFAULT_MAX_RECORD_BYTES)
    except (OSError, UnicodeDecodeError):
        return None
    header = next(csv.reader([first], delimiter=delimiter, quotechar='"'), [])
    text = "".join(header)
    if not header or "\r" in text or "\n" in text or '"' in first.rstrip("\r\n").replace('""', ""):
        return None
    if len(header) < 2 or len(set(header)) != len(header) or not plain_layout(path):
        return None
    return header


_SCAN_BYTES = 8 * 1024 * 1024
_SPACED_QUOTES = (b' "', b'\t"', b'" ', b'"\t')


def plain_layout(path: Path) -> bool:
    """False when the file reader and DuckDB could split the file differently.

    That is a line ending in a lone carriage return (the reader refuses it, DuckDB splits
    on it), and a quote next to a space or tab (the reader keeps ``, "x"`` as text, DuckDB
    takes it as a quoted field); a blank line in a one-column file (the reader skips it,
    DuckDB reads an empty record) is excluded by ``read_header``.
    """
    with path.open("rb") as handle:
        tail = b""
        while chunk := handle.read(_SCAN_BYTES):
            window = tail + chunk
            body = window[:-1] if window.endswith(b"\r") else window  # its \n may follow
            if body.count(b"\r") != body.count(b"\r\n"):
                return False
            if b'"' in window and any(pattern in window for pattern in _SPACED_QUOTES):
                return False
            tail = window[-1:]
    return not tail.endswith(b"\r")


def csv_side(side: SideConfig, root: Path, rename: dict[str, str]) -> CsvSide | None:
    """``side`` as the engine reads it, or None when it is not a UTF-8 CSV file it may read.

    ``rename`` maps the target's ``target_field`` names to source names; None too when
    renaming makes two columns share a name.
    """
    if side.kind != "csv":
        return None
    file = side.file()
    if file.encoding.lower() not in _UTF8:
        return None
    path = Path(file.path) if Path(file.path).is_absolute() else root / file.path
    header = read_header(path, file.delimiter)
    if header is None:
        return None
    names = [rename.get(name, name) for name in header]
    if len(set(names)) != len(names):
        return None
    return CsvSide(path, file.delimiter, header, names)
