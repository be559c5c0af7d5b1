"""map: JSONata (inline or file) and mapping sheets, built from YAML; lint-time checks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dovetail.testing.components import build_component


def test_inline_jsonata_result_replaces_the_payload(step_of, run):
    step = step_of('map: {jsonata: \'{"id": order_id, "total": $sum(lines.amount)}\'}')
    result = run(step, [{"order_id": 7, "lines": [{"amount": 2}, {"amount": 3}]}])
    assert result.payloads == [{"id": 7, "total": 5}]


def test_jsonata_file_is_read_from_the_project(write, step_of, run):
    write("mappings/order.jsonata", '{\n  "ref": "SO-" & $string(order_id)\n}\n')
    step = step_of("map: {jsonata: mappings/order.jsonata}")
    assert run(step, [{"order_id": 9}]).payloads == [{"ref": "SO-9"}]


def test_jsonata_runtime_error_dead_letters_the_message(step_of, run):
    step = step_of("map: {jsonata: 'total * 2'}")
    result = run(step, [{"total": "lots"}, {"total": 2}])
    assert result.payloads == [4]
    (failed,) = result.outcome.failed
    assert failed.failure.error_class == "MappingFailed"
    assert failed.failure.reason == "map: not a number"
    assert failed.failure.detail is not None
    assert failed.failure.detail.startswith("JSONata 'total * 2' failed: ")
    assert sorted(result.acked) == [0, 1]


def test_jsonata_syntax_errors_are_located_at_lint(write, tmp_path):
    with pytest.raises(ValidationError, match=r"<inline>:1:3: JSONata syntax error"):
        build_component("step", "map: {jsonata: 'a +'}", tmp_path)
    write("mappings/bad.jsonata", '{\n  "a": $substring(x,\n}\n')
    with pytest.raises(ValidationError, match=r"mappings/bad\.jsonata:3:\d+: JSONata syntax error"):
        build_component("step", "map: {jsonata: mappings/bad.jsonata}", tmp_path)
    with pytest.raises(ValidationError, match=r"mappings/none\.jsonata:1:1: file not found"):
        build_component("step", "map: {jsonata: mappings/none.jsonata}", tmp_path)


def test_exactly_one_of_jsonata_or_sheet(write, tmp_path):
    write("mappings/s.csv", "target,source\na,b\n")
    for snippet in ("map: {}", "map: {jsonata: a, sheet: mappings/s.csv}"):
        with pytest.raises(ValidationError, match="give exactly one of jsonata"):
            build_component("step", snippet, tmp_path)


def test_sheet_maps_and_required_field_failure_is_dead_lettered(write, step_of, run):
    write(
        "mappings/order.csv",
        "target,source,transform,required,note\n"
        "order.id,order_id,string,yes,\n"
        "order.name,name,trim|upper,yes,\n"
        "order.currency,,default:EUR,no,\n",
    )
    step = step_of("map: {sheet: mappings/order.csv}")
    result = run(step, [{"order_id": 1, "name": " ada "}, {"order_id": 2}])
    assert result.payloads == [{"order": {"id": "1", "name": "ADA", "currency": "EUR"}}]
    (failed,) = result.outcome.failed
    assert failed.failure.reason == "map: required field order.name is empty (source name)"
    assert failed.failure.error_class == "MappingFailed"
    assert failed.failure.permanent


def test_sheet_errors_fail_lint_with_file_line_col(write, tmp_path):
    write("mappings/s.csv", "target,source,transform\na,x,\nb,y,\nc,z,uper\n")
    with pytest.raises(ValidationError) as caught:
        build_component("step", "map: {sheet: mappings/s.csv}", tmp_path)
    (error,) = caught.value.errors()
    assert error["loc"] == ("sheet",)
    assert error["msg"] == (
        "Value error, mappings/s.csv:4:3: unknown transform 'uper' (did you mean 'upper'?)"
    )


def test_missing_sheet_is_a_lint_error(tmp_path):
    with pytest.raises(ValidationError, match=r"file not found: mappings/none\.csv"):
        build_component("step", "map: {sheet: mappings/none.csv}", tmp_path)


def test_yaml_sheet_with_lookup_table(write, step_of, run):
    write("lookups/country.csv", "iso,name\nDE,Germany\n")
    write(
        "mappings/c.yaml",
        "fields:\n  - {target: country, source: cc, transform: upper|lookup:country}\n",
    )
    step = step_of("map: {sheet: mappings/c.yaml}")
    assert run(step, [{"cc": "de"}, {"cc": "xx"}]).payloads == [
        {"country": "Germany"},
        {"country": None},
    ]


def test_jsonata_without_a_result_fails_the_message(step_of, run):
    result = run(step_of("map: {jsonata: customer.name}"), [{"customer": {}}])
    assert result.reasons == ["map: <inline> gave no result (undefined or null)"]
