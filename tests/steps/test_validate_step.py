"""validate: JSON Schema and XSD checks, built from YAML, failure reasons asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

ORDER_SCHEMA = {
    "type": "object",
    "required": ["order_id", "customer"],
    "properties": {
        "order_id": {"type": "string"},
        "total": {"$ref": "common.schema.json#/$defs/amount"},
        "customer": {
            "type": "object",
            "properties": {"email": {"type": "string", "format": "email", "maxLength": 20}},
        },
    },
}
COMMON_SCHEMA = {"$defs": {"amount": {"type": "number", "minimum": 0}}}

ORDER_XSD = """<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="order">
    <xs:complexType><xs:sequence>
      <xs:element name="id">
        <xs:simpleType><xs:restriction base="xs:string">
          <xs:pattern value="[A-Z]+"/>
        </xs:restriction></xs:simpleType>
      </xs:element>
      <xs:element name="total" type="xs:decimal"/>
    </xs:sequence></xs:complexType>
  </xs:element>
</xs:schema>
"""


@pytest.fixture
def schemas(write):
    write("schemas/order.schema.json", json.dumps(ORDER_SCHEMA))
    write("schemas/common.schema.json", json.dumps(COMMON_SCHEMA))
    write("schemas/order.xsd", ORDER_XSD)


def test_conforming_json_payload_passes_unchanged(schemas, step_of, run):
    step = step_of("validate: {schema: schemas/order.schema.json}")
    payload = {"order_id": "A1", "total": 5, "customer": {"email": "a@b.de"}}
    result = run(step, [payload])
    assert result.payloads == [payload]
    assert result.outcome.failed == []


def test_violation_is_dead_lettered_with_json_pointer_and_masked_value(schemas, step_of, run):
    step = step_of("validate: schemas/order.schema.json")
    secret = "very.long.address@example.com"
    result = run(step, [{"order_id": "A1", "customer": {"email": secret}}])
    (failed,) = result.outcome.failed
    assert failed.failure.reason.startswith(
        "validate: schema violation at /customer/email: value is longer"
    )
    assert failed.failure.error_class == "ValidationFailed"
    assert failed.failure.permanent is True
    assert failed.failure.step == "validate"
    assert secret not in failed.failure.reason
    assert result.acked == [0]


def test_reason_lists_the_first_violations_and_says_there_are_more(write, step_of, run):
    schema = {"type": "object", "properties": {k: {"type": "integer"} for k in "abcde"}}
    write("schemas/ints.schema.json", json.dumps(schema))
    step = step_of("validate: {schema: schemas/ints.schema.json, max_errors: 2}")
    result = run(step, [dict.fromkeys("abcde", "x")])
    (reason,) = result.reasons
    assert reason.startswith("validate: schema violation at /")
    assert reason.count("schema violation at /") == 2
    assert reason.endswith("(and more)")
    assert '"x"' not in reason


def test_missing_required_field_and_root_pointer(schemas, step_of, run):
    step = step_of("validate: {schema: schemas/order.schema.json}")
    result = run(step, [{"customer": {}}, [1, 2]])
    assert result.reasons == [
        'validate: schema violation at /: "order_id" is a required property',
        'validate: schema violation at /: value is not of type "object"',
    ]


def test_ref_to_sibling_file_is_followed(schemas, step_of, run):
    step = step_of("validate: {schema: schemas/order.schema.json}")
    result = run(step, [{"order_id": "A1", "customer": {}, "total": -1}])
    assert result.reasons == [
        "validate: schema violation at /total: value is less than the minimum of 0"
    ]


def test_ref_to_the_network_is_refused_at_lint(write, tmp_path):
    write("schemas/remote.schema.json", json.dumps({"$ref": "https://example.com/x.json"}))
    with pytest.raises(ValidationError, match=r"invalid schema: .*not a file inside the project"):
        _lint("validate: schemas/remote.schema.json", tmp_path)


def test_ref_outside_the_project_is_refused_at_lint(write, tmp_path):
    outside = tmp_path.parent / f"{tmp_path.name}-outside.json"
    outside.write_text("{}", encoding="utf-8")
    write("schemas/escape.schema.json", json.dumps({"$ref": outside.as_uri()}))
    with pytest.raises(ValidationError, match="not a file inside the project"):
        _lint("validate: schemas/escape.schema.json", tmp_path)


def test_lint_rejects_missing_file_unknown_extension_and_broken_schema(write, tmp_path):
    with pytest.raises(ValidationError, match=r"file not found: schemas/none\.json"):
        _lint("validate: schemas/none.json", tmp_path)
    write("schemas/order.yaml", "type: object\n")
    with pytest.raises(ValidationError, match=r"must be a \.json \(JSON Schema\) or \.xsd"):
        _lint("validate: schemas/order.yaml", tmp_path)
    write("schemas/bad.json", '{"type": "nonsense"}')
    with pytest.raises(ValidationError, match="invalid schema"):
        _lint("validate: schemas/bad.json", tmp_path)
    write("schemas/notjson.json", "{nope")
    with pytest.raises(ValidationError, match="invalid schema"):
        _lint("validate: schemas/notjson.json", tmp_path)
    write("schemas/bad.xsd", "<xs:schema xmlns:xs='http://www.w3.org/2001/XMLSchema'><oops/>")
    with pytest.raises(ValidationError, match="invalid schema"):
        _lint("validate: schemas/bad.xsd", tmp_path)


def test_xsd_validates_xml_text_as_bytes_and_as_str_with_declaration(schemas, step_of, run):
    step = step_of("validate: {schema: schemas/order.xsd}")
    good_bytes = b"<order><id>ABC</id><total>1.5</total></order>"
    good_str = '<?xml version="1.0" encoding="UTF-8"?>\n<order><id>ABC</id><total>2</total></order>'
    result = run(step, [good_bytes, good_str])
    assert result.payloads == [good_bytes, good_str]


def test_xsd_violation_reason_has_path_and_no_value(schemas, step_of, run):
    step = step_of("validate: {schema: schemas/order.xsd}")
    result = run(step, [b"<order><id>secret9</id><total>lots</total></order>"])
    (reason,) = result.reasons
    assert reason.startswith(
        "validate: schema violation at /order/id: [facet 'pattern'] The value is not"
    )
    assert "; schema violation at /order/total: value is not a valid value" in reason
    assert "secret9" not in reason
    assert "lots" not in reason
    assert result.outcome.failed[0].failure.error_class == "ValidationFailed"


def test_xsd_against_parsed_object_is_a_clear_permanent_failure(schemas, step_of, run):
    step = step_of("validate: {schema: schemas/order.xsd}")
    result = run(step, [{"order": {"id": "ABC"}}])
    (failed,) = result.outcome.failed
    assert failed.failure.permanent
    assert failed.failure.reason == (
        "validate: schema order.xsd is an XSD, which checks XML text, but the payload is an object"
        " (parsed data); validate before converting XML, or use a JSON Schema"
    )


def test_malformed_xml_is_rejected(schemas, step_of, run):
    step = step_of("validate: {schema: schemas/order.xsd}")
    result = run(step, [b"<order><id>ABC</order>"])
    (failed,) = result.outcome.failed
    assert failed.failure.error_class == "PayloadRejected"
    assert failed.failure.reason == "validate: payload is not well-formed XML"
    assert failed.failure.detail is not None
    assert failed.failure.detail.startswith("not well-formed XML: ")


def test_xml_external_entities_are_not_resolved(tmp_path, write, step_of, run):
    secret = write("secret.txt", "TOPSECRET")
    write(
        "schemas/secret.xsd",
        """<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="order"><xs:complexType><xs:sequence>
    <xs:element name="id"><xs:simpleType><xs:restriction base="xs:string">
      <xs:enumeration value="TOPSECRET"/>
    </xs:restriction></xs:simpleType></xs:element>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>""",
    )
    step = step_of("validate: {schema: schemas/secret.xsd}")
    attack = (
        f'<?xml version="1.0"?><!DOCTYPE order [<!ENTITY x SYSTEM "{secret.as_uri()}">]>'
        "<order><id>&x;</id></order>"
    ).encode()
    result = run(step, [attack])
    # had the entity been expanded, the id would equal the file content and pass
    assert len(result.outcome.failed) == 1
    assert "TOPSECRET" not in result.reasons[0]


def _lint(snippet: str, project_dir: Path) -> object:
    from dovetail.testing.components import build_component

    return build_component("step", snippet, project_dir)


def test_a_json_schema_batch_is_checked_without_a_call_per_conforming_payload(schemas, step_of):
    import asyncio
    import sys

    from dovetail.core.ack import Settlement
    from dovetail.core.envelope import Envelope

    step = step_of("validate: schemas/order.schema.json")
    good = {"order_id": "A1", "total": 5, "customer": {"email": "a@b.de"}}
    bad = {"order_id": 7, "customer": {}}
    batch = [Envelope(payload=p, settlement=Settlement()) for p in [good] * 50 + [bad, good]]
    calls = 0

    def profile(frame, event, _arg):
        nonlocal calls
        if event == "call" and frame.f_code.co_filename.endswith("validate.py"):
            calls += 1

    async def go():
        await step.open()
        sys.setprofile(profile)
        try:
            return await step.process(batch)
        finally:
            sys.setprofile(None)

    outcome = asyncio.run(go())

    assert outcome.passed == batch[:50] + batch[51:]
    (failed,) = outcome.failed
    assert failed.failure.reason.startswith("validate: schema violation at /order_id")
    # process itself, then check and its reason-building code for the one refused payload only
    assert calls < 10
