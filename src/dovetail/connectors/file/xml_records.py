"""XML records: stream elements named ``record`` out of a document, and payloads back to XML.

Reading uses lxml ``iterparse`` with entities unresolved, no network, no DTD and libxml2's
safety limits on (``huge_tree=False``); elements are cleared as soon as they are used, so
memory stays bounded by one record. The payload of a record element follows the common
XML-to-JSON convention: child elements become keys (repeated children a list), attributes
``"@name"``, text of an element that also has attributes or children ``"#text"``; a leaf
element is its text (None when empty). Namespaces are dropped from keys. A record that
refers to an entity other than the predefined five (``&amp;``...) is a poison record: the
entity is never expanded, and silently dropping it would lose data.

A document with a DOCTYPE declaration is refused as a whole (a fatal record, nothing read
from it): libxml2 substitutes internal entities in attribute values, and drops references
to entities of an external DTD from them, even with entity resolution off, so no attribute
of such a document can be trusted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, BinaryIO

from lxml import etree

from dovetail.connectors.file.formats import FileUnreadable, ReaderOptions, Record
from dovetail.errors import PayloadRejected, PermanentError
from dovetail.safety.limits import excerpt, format_bytes

_NAME = re.compile(r"^[A-Za-z_][\w.\-]*$")


def local_name(tag: str) -> str:
    """``{urn:x}Order`` -> ``Order``."""
    return tag.rsplit("}", 1)[-1]


def _approx_size(elem: etree._Element) -> int:
    """Roughly the bytes ``elem`` itself (not its children) takes in the document."""
    size = 2 * len(elem.tag) + 5 + len(elem.text or "") + len(elem.tail or "")
    for key, value in elem.attrib.items():
        size += len(key) + len(value) + 4
    return size


def element_to_value(elem: etree._Element) -> Any:
    """Convert an element (and its subtree) to JSON-like data; see the module docstring."""
    result: dict[str, Any] = {}
    for name, value in elem.attrib.items():
        result["@" + local_name(str(name))] = str(value)
    texts = [elem.text] if elem.text else []
    repeated: set[str] = set()
    has_children = False
    for child in elem:
        if child.tag is etree.Entity:
            raise PayloadRejected(
                f"entity reference {child.text} is not expanded (XML entities are disabled)"
            )
        if isinstance(child.tag, str):
            has_children = True
            key = local_name(child.tag)
            value = element_to_value(child)
            if key not in result:
                result[key] = value
            elif key in repeated:
                result[key].append(value)
            else:
                result[key] = [result[key], value]
                repeated.add(key)
        if child.tail:
            texts.append(child.tail)
    if not has_children and not result:
        return elem.text
    text = " ".join(piece.strip() for piece in texts if piece.strip())
    if text:
        result["#text"] = text
    return result


def read_xml(stream: BinaryIO, options: ReaderOptions) -> Iterator[Record]:
    """Yield one record per element named ``options.record`` (local name, or ``{ns}name``).

    A record deeper than ``max_depth`` or larger than ``max_record_bytes`` is a poison record;
    a document that is not well-formed or has a DOCTYPE ends the file with a fatal record
    (``FileUnreadable``).
    """
    limits = options.limits
    wanted = options.record or "record"
    match_clark = wanted.startswith("{")
    parser = etree.iterparse(
        stream,
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        encoding=options.encoding,
    )
    current: etree._Element | None = None
    depth = size = 0
    start_line: int | None = None
    broken: str | None = None
    checked = False
    try:
        for event, elem in parser:
            if not checked:  # the first start tag: any DOCTYPE has been read by now
                _refuse_doctype(elem)
                checked = True
            if event == "start":
                if current is None:
                    name = elem.tag if match_clark else local_name(elem.tag)
                    if name == wanted:
                        current, depth, size, broken = elem, 1, 0, None
                        start_line = elem.sourceline
                else:
                    depth += 1
                    if depth > limits.max_depth and broken is None:
                        broken = (
                            f"line {start_line}: record nests deeper than the limit of"
                            f" {limits.max_depth} levels (max_depth)"
                        )
                continue
            if current is None:
                _release(elem)
                continue
            size += _approx_size(elem)
            if elem is not current:
                depth -= 1
                if size > limits.max_record_bytes and broken is None:
                    broken = (
                        f"line {start_line}: record larger than the limit of"
                        f" {format_bytes(limits.max_record_bytes)} (max_record_bytes)"
                    )
                if broken is not None:
                    _release(elem)
                continue
            if broken is not None:
                raw = etree.tostring(current, encoding="unicode", with_tail=False)
                yield Record(excerpt(raw, 4096), start_line, broken)
            else:
                try:
                    value = element_to_value(current)
                except PayloadRejected as exc:
                    raw = etree.tostring(current, encoding="unicode", with_tail=False)
                    yield Record(excerpt(raw, 4096), start_line, f"line {start_line}: {exc}")
                else:
                    if not isinstance(value, dict):
                        value = {} if value is None else {"#text": value}
                    yield Record(value, start_line)
            _release(current)
            current = None
    except etree.XMLSyntaxError as exc:
        line, message = exc.lineno, exc.msg or str(exc)
        errors = parser.error_log
        if errors and (not line or message == "no element found"):  # the cause came first
            line, message = errors[0].line, errors[0].message
        raise FileUnreadable(
            f"line {line or start_line or 1}: XML is not well-formed: {message}"
        ) from None


def _refuse_doctype(root: etree._Element) -> None:
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.system_url or docinfo.public_id:
        raise FileUnreadable(
            f"line {root.sourceline}: the document has a DOCTYPE declaration before its root"
            " element; DTDs and entities are not accepted (an entity in an attribute would be"
            " expanded or dropped), so the file is refused"
        )


def _release(elem: etree._Element) -> None:
    """Free a finished element and the finished siblings before it (constant memory)."""
    elem.clear()
    parent = elem.getparent()
    if parent is not None:
        while elem.getprevious() is not None:
            del parent[0]


def value_to_element(name: str, value: Any) -> etree._Element:
    """Build an element ``name`` from a payload (inverse of ``element_to_value``).

    Raises ``PermanentError`` when a key is not a valid XML name or a value cannot be written.
    """
    elem = etree.Element(_check_name(name))
    _fill(elem, value)
    return elem


def _check_name(name: str) -> str:
    if not _NAME.match(name) or name.lower().startswith("xml"):
        raise PermanentError(f"{name!r} is not a valid XML element or attribute name")
    return name


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise PermanentError(f"cannot write a {type(value).__name__} value as XML text")


def _fill(elem: etree._Element, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        elem.text = _scalar(value)
        return
    for key, item in value.items():
        if not isinstance(key, str):
            raise PermanentError(f"cannot write the non-string key {key!r} as XML")
        if key == "#text":
            elem.text = _scalar(item)
        elif key.startswith("@"):
            elem.set(_check_name(key[1:]), _scalar(item))
        else:
            for entry in item if isinstance(item, list) else [item]:
                child = etree.SubElement(elem, _check_name(key))
                _fill(child, entry)
