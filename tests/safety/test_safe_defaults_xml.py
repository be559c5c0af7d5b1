"""XML: no external entities, no DTD loading, no network, entity bombs refused quickly, in
every XML parse (file source records, webhook bodies, XSD validation)."""

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


def test_an_external_file_entity_is_not_expanded_and_the_record_is_dead_lettered() -> None:
    first, second = records(xxe_file())
    assert first.error == "line 1: entity reference &x; is not expanded (XML entities are disabled)"
    assert "root:" not in str(first.payload)
    assert second.payload == {"name": "ok"} and second.error is None


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
    first, _ = records(xxe_file())
    assert "root:" in str(first.payload)


@pytest.mark.parametrize("build", [external_dtd, parameter_entity])
def test_external_dtds_are_never_fetched(build: Any, dtd_server: tuple[str, list[str]]) -> None:
    base, fetched = dtd_server
    (record,) = records(build(base))
    assert record.error is not None and "not expanded" in record.error
    with contextlib.suppress(PayloadRejected):
        assert "FETCHED" not in str(parse_body(build(base), "xml", 64))
    assert fetched == []


def test_a_local_external_dtd_is_not_loaded(tmp_path: Path) -> None:
    (tmp_path / "e.dtd").write_text('<!ENTITY ext "FETCHED">')
    document = external_dtd(tmp_path.as_uri())
    (record,) = records(document)
    assert "FETCHED" not in str(record.payload)
    assert record.error is not None and "&ext;" in record.error


def test_with_dtd_loading_switched_on_the_local_dtd_would_be_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "e.dtd").write_text('<!ENTITY ext "FETCHED">')
    real = etree.iterparse

    def unsafe(source: Any, **options: Any) -> Any:
        options.update(resolve_entities=True, load_dtd=True)
        return real(source, **options)

    monkeypatch.setattr(etree, "iterparse", unsafe)
    (record,) = records(external_dtd(tmp_path.as_uri()))
    assert record.payload == {"name": "FETCHED"}


def test_a_billion_laughs_file_is_refused_quickly() -> None:
    started = time.monotonic()
    with pytest.raises(FileUnreadable, match="amplification"):
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
