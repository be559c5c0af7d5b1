"""Kafka record headers to envelope headers.

Record values are read and written by ``dovetail.connectors.payload_codec``.
"""

from __future__ import annotations

from collections.abc import Iterable

from dovetail.types import Headers


def headers_from_record(headers: Iterable[tuple[str, bytes]] | None) -> Headers:
    """Record headers as envelope headers: lower-case names, UTF-8 text values (the last
    value wins when a name repeats)."""
    result: Headers = {}
    for name, value in headers or ():
        result[str(name).lower()] = (value or b"").decode("utf-8", errors="replace")
    return result
