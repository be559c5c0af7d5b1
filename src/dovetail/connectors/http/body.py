"""Webhook bodies: the declared length, reading under a limit, and parsing by format.

Each function refuses bad input with ``PayloadRejected`` (a reason the caller answers as a
4xx problem) or ``BodyTooLarge``; none raises anything else for any input.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import orjson

from dovetail.errors import PayloadRejected
from dovetail.safety.limits import nesting_depth
from dovetail.types import Payload

_DECIMAL = re.compile(r"[0-9]{1,19}")
"""ASCII digits only: ``str.isdigit`` also accepts ``²`` and other digits ``int`` refuses."""


class BodyTooLarge(PayloadRejected):
    """The body is (or is declared to be) larger than the limit; answered ``413``."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is larger than {limit} bytes")
        self.limit = limit


def declared_length(value: str | None) -> int | None:
    """The ``Content-Length`` header as a number (``None`` when absent); raises
    ``PayloadRejected`` unless it is 1 to 19 ASCII digits."""
    if value is None:
        return None
    if not _DECIMAL.fullmatch(value.strip(" \t")):
        raise PayloadRejected("invalid Content-Length header")
    return int(value)


async def read_body(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """Collect a body chunk by chunk; raises ``BodyTooLarge`` as soon as it passes ``limit``
    bytes, so no more than ``limit`` plus one chunk is ever held."""
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(limit)
    return bytes(body)


def parse_body(body: bytes, fmt: str, max_depth: int) -> Payload:
    """Parse a webhook body; raises ``PayloadRejected`` when malformed, nested too deeply or
    (XML) carrying a document type declaration."""
    if fmt == "json":
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise PayloadRejected(f"invalid JSON: {exc}") from None
        if nesting_depth(value, max_depth) > max_depth:
            raise PayloadRejected(f"JSON nested deeper than {max_depth} levels")
        return value
    if fmt == "xml":
        _check_xml(body, max_depth)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadRejected(f"the body is not valid UTF-8: {exc.reason}") from None


def _check_xml(body: bytes, max_depth: int) -> None:
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        raise PayloadRejected(f"invalid XML: {exc}") from None
    tree = root.getroottree()
    if tree.docinfo.internalDTD is not None:  # any <!DOCTYPE>, with or without a subset
        raise PayloadRejected("XML with a DOCTYPE is refused (DTDs and entities are disabled)")
    depth = 0
    for event, _ in etree.iterwalk(root, events=("start", "end")):
        depth += 1 if event == "start" else -1
        if depth > max_depth:
            raise PayloadRejected(f"XML nested deeper than {max_depth} levels")
