"""XML: no external entities, no DTD loading, no network, entity bombs refused quickly, in
every XML parse (file source records, webhook bodies, XSD validation); a file with a DOCTYPE
is refused whole, so no entity is expanded or dropped in an attribute either."""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from dovetail.connectors.file import xml_records
from dovetail.connectors.file.formats import FileUnreadable, ReaderOptions, Record
from dovetail.connectors.file.xml_records import read_xml
from dovetail.connectors.http.source import parse_body
from dovetail.errors import PayloadRejected
from dovetail.steps.validate import load_schema


@pytest.fixture
def dtd_server() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server serving a DTD; records every path fetched from it."""
    fetched: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetched.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'<!ENTITY ext "FETCHED">')

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", fetched
    finally:
        server.shutdown()
        server.server_close()


def xxe_file() -> bytes:
    return (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<r><rec><name>&x;</name></rec><rec><name>ok</name></rec></r>"
    )


def external_dtd(base: str) -> bytes:
    return (
        f'<?xml version="1.0"?><!DOCTYPE r SYSTEM "{base}/e.dtd">'
        f"<r><rec><name>&ext;</name></rec></r>"
    ).encode()


def parameter_entity(base: str) -> bytes:
    return (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "{base}/p.dtd"> %p;]>'
        f"<r><rec><name>&ext;</name></rec></r>"
    ).encode()


def billion_laughs() -> bytes:
    entities = b'<!ENTITY l0 "lol">' + b"".join(
        b'<!ENTITY l%d "%s">' % (i, b"&l%d;" % (i - 1) * 10) for i in range(1, 10)
    )
    return b'<?xml version="1.0"?><!DOCTYPE r [' + entities + b"]><r><rec>&l9;</rec></r>"


def records(document: bytes) -> list[Record]:
    return list(read_xml(io.BytesIO(document), ReaderOptions(format="xml", record="rec")))


DOCTYPE_REFUSED = (
    "the document has a DOCTYPE declaration before its root element; DTDs and entities are not"
    " accepted (an entity in an attribute would be expanded or dropped), so the file is refused"
)


def no_doctype_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Switch the DOCTYPE refusal off, to show what it protects against."""
    monkeypatch.setattr(xml_records, "_refuse_doctype", lambda root: None)


def test_a_document_declaring_an_external_file_entity_is_refused_whole() -> None:
    with pytest.raises(FileUnreadable) as caught:
        records(xxe_file())
    assert str(caught.value) == f"line 1: {DOCTYPE_REFUSED}"
    assert "root:" not in str(caught.value)


def internal_entity_in_attribute() -> bytes:
    return (
        b'<?xml version="1.0"?>\n<!DOCTYPE orders [\n  <!ENTITY i "INTERNAL">\n]>\n'
        b'<orders>\n  <rec a="&i;">x</rec>\n  <rec a="plain">y</rec>\n</orders>\n'
    )


def test_an_internal_entity_in_an_attribute_is_never_expanded_the_file_is_refused() -> None:
    with pytest.raises(FileUnreadable) as caught:
        records(internal_entity_in_attribute())
    assert str(caught.value) == f"line 5: {DOCTYPE_REFUSED}"


def test_without_the_doctype_check_the_attribute_would_hold_the_expansion(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    no_doctype_check(monkeypatch)
    first, _ = records(internal_entity_in_attribute())
    assert first.payload == {"@a": "INTERNAL", "#text": "x"}


def test_an_undeclared_entity_in_an_attribute_is_named_with_its_line() -> None:
    with pytest.raises(FileUnreadable) as caught:
        records(b'<r>\n<rec a="ok">1</rec>\n<rec a="&i;">2</rec>\n</r>')
    assert str(caught.value) == "line 3: XML is not well-formed: Entity 'i' not defined"


def test_a_document_referring_to_an_external_dtd_is_refused_even_without_entities() -> None:
    with pytest.raises(FileUnreadable, match="DOCTYPE"):
        records(b'<!DOCTYPE r SYSTEM "r.dtd"><r><rec a="1">x</rec></r>')
    assert records(b'<r><rec a="1&amp;2&#65;">x</rec></r>')[0].payload == {
        "@a": "1&2A",
        "#text": "x",
    }


def test_with_entity_expansion_switched_on_the_test_would_see_the_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not Path("/etc/passwd").exists():
        pytest.skip("needs /etc/passwd")
    real = etree.iterparse

    def unsafe(source: Any, **options: Any) -> Any:
        options.update(resolve_entities=True, load_dtd=True)
        return real(source, **options)

    monkeypatch.setattr(etree, "iterparse", unsafe)
    no_doctype_check(monkeypatch)
    first, _ = records(xxe_file())
    assert "root:" in str(first.payload)


@pytest.mark.parametrize("build", [external_dtd, parameter_entity])
def test_external_dtds_are_never_fetched(build: Any, dtd_server: tuple[str, list[str]]) -> None:
    base, fetched = dtd_server
    with pytest.raises(FileUnreadable, match="DOCTYPE"):
        records(build(base))
    with contextlib.suppress(PayloadRejected):
        assert "FETCHED" not in str(parse_body(build(base), "xml", 64))
    assert fetched == []


def test_a_local_external_dtd_is_not_loaded(tmp_path: Path) -> None:
    (tmp_path / "e.dtd").write_text('<!ENTITY ext "FETCHED">')
    document = external_dtd(tmp_path.as_uri())
    with pytest.raises(FileUnreadable, match="DOCTYPE") as caught:
        records(document)
    assert "FETCHED" not in str(caught.value)


def test_with_dtd_loading_switched_on_the_local_dtd_would_be_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "e.dtd").write_text('<!ENTITY ext "FETCHED">')
    real = etree.iterparse

    def unsafe(source: Any, **options: Any) -> Any:
        options.update(resolve_entities=True, load_dtd=True)
        return real(source, **options)

    monkeypatch.setattr(etree, "iterparse", unsafe)
    no_doctype_check(monkeypatch)
    (record,) = records(external_dtd(tmp_path.as_uri()))
    assert record.payload == {"name": "FETCHED"}


def test_a_billion_laughs_file_is_refused_quickly() -> None:
    started = time.monotonic()
    with pytest.raises(FileUnreadable, match="DOCTYPE"):
        records(billion_laughs())
    assert time.monotonic() - started < 2


def test_a_billion_laughs_webhook_body_is_refused_quickly() -> None:
    started = time.monotonic()
    with pytest.raises(PayloadRejected, match="invalid XML"):
        parse_body(billion_laughs(), "xml", 64)
    assert time.monotonic() - started < 2


XSD = """<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  {extra}<xs:element name="r" type="xs:string"/>
</xs:schema>"""


def test_xsd_validation_does_not_expand_entities_in_the_payload(tmp_path: Path) -> None:
    (tmp_path / "s.xsd").write_text(XSD.format(extra=""))
    check = load_schema(tmp_path, "s.xsd")
    check("<r>plain</r>")
    payload = '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
    with pytest.raises(PayloadRejected, match="entity &x;, which is not expanded"):
        check(payload)
    with pytest.raises(PayloadRejected, match="amplification"):
        check(billion_laughs().decode().replace("<rec>&l9;</rec>", "&l9;"))


def test_xsd_imports_from_the_network_are_refused(
    tmp_path: Path, dtd_server: tuple[str, list[str]]
) -> None:
    base, fetched = dtd_server
    imported = f'<xs:import namespace="urn:o" schemaLocation="{base}/o.xsd"/>'
    (tmp_path / "s.xsd").write_text(XSD.format(extra=imported))
    with pytest.raises(Exception, match="invalid schema"):
        load_schema(tmp_path, "s.xsd")
    assert fetched == []


def test_xsd_includes_may_use_files_of_the_project_but_not_outside(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "schemas").mkdir(parents=True)
    part = '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:simpleType name="t">'
    part += '<xs:restriction base="xs:string"/></xs:simpleType></xs:schema>'
    (project / "common").mkdir()
    (project / "common/part.xsd").write_text(part)
    (tmp_path / "outside.xsd").write_text(part)
    (project / "schemas/ok.xsd").write_text(
        XSD.format(extra='<xs:include schemaLocation="../common/part.xsd"/>')
    )
    load_schema(project, "schemas/ok.xsd")("<r>x</r>")
    escape = '<xs:include schemaLocation="../../outside.xsd"/>'
    (project / "schemas/bad.xsd").write_text(XSD.format(extra=escape))
    with pytest.raises(Exception, match="invalid schema"):
        load_schema(project, "schemas/bad.xsd")
