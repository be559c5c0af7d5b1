"""lookup: CSV code tables, on_missing policies, lint checks, reload after a fix; properties."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from dovetail.testing.components import build_component

STATUS = "code,erp,label\nN,NEW,New order\nP,PAID,Paid\n1,ONE,Numeric\n"


@pytest.fixture
def table(write):
    return write("lookups/status.csv", STATUS)


def test_found_value_is_written_into_a_new_nested_path_without_touching_the_input(
    table, step_of, run
):
    step = step_of("lookup: {table: lookups/status.csv, key: status, into: erp.status}")
    payload = {"status": "P", "erp": {"system": "sap"}}
    original = copy.deepcopy(payload)
    result = run(step, [payload])
    assert result.payloads == [{"status": "P", "erp": {"system": "sap", "status": "PAID"}}]
    assert payload == original


def test_column_whole_row_key_column_and_numeric_keys(table, step_of, run):
    label = step_of("lookup: {table: lookups/status.csv, key: status, into: label, column: label}")
    assert run(label, [{"status": "N"}]).payloads == [{"status": "N", "label": "New order"}]
    row = step_of('lookup: {table: lookups/status.csv, key: s, into: row, column: "*"}')
    assert run(row, [{"s": 1}]).payloads == [
        {"s": 1, "row": {"code": "1", "erp": "ONE", "label": "Numeric"}}
    ]
    by_erp = step_of(
        "lookup: {table: lookups/status.csv, key: e, into: code, key_column: erp, column: code}"
    )
    assert run(by_erp, [{"e": "PAID"}]).payloads == [{"e": "PAID", "code": "P"}]


def test_missing_key_is_dead_lettered_by_default_with_the_field_but_not_the_key_in_the_reason(
    table, step_of, run
):
    step = step_of("lookup: {table: lookups/status.csv, key: status, into: erp_status}")
    result = run(step, [{"status": "X"}, {"other": 1}, {"status": {"nested": 1}}])
    assert result.reasons == [
        "lookup: field status: key not found in lookups/status.csv",
        "lookup: field status: no key value for lookups/status.csv",
        "lookup: field status: no key value for lookups/status.csv",
    ]
    assert result.outcome.failed[0].failure is not None
    assert result.outcome.failed[0].failure.detail == "key 'X' not found in lookups/status.csv"
    assert {e.failure.error_class for e in result.outcome.failed} == {"LookupMissing"}
    assert all(e.failure.permanent for e in result.outcome.failed)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("on_missing: null", {"status": "X", "erp": None}),
        ("on_missing: keep", {"status": "X"}),
        ("on_missing: default, default: UNKNOWN", {"status": "X", "erp": "UNKNOWN"}),
        ("on_missing: default, default: 0", {"status": "X", "erp": 0}),
    ],
)
def test_on_missing_policies(table, step_of, run, options, expected):
    step = step_of(f"lookup: {{table: lookups/status.csv, key: status, into: erp, {options}}}")
    assert run(step, [{"status": "X"}]).payloads == [expected]


def test_payload_that_is_not_an_object_or_cannot_take_the_value_fails(table, step_of, run):
    step = step_of("lookup: {table: lookups/status.csv, key: status, into: erp.status}")
    result = run(step, [["P"], {"status": "P", "erp": "flat"}])
    assert result.reasons == [
        "lookup: the payload is not an object",
        "lookup: cannot write into erp.status: erp is not an object",
    ]


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        (
            "{table: lookups/status.csv, key: s, into: x, on_missing: default}",
            "on_missing: default needs a default value",
        ),
        (
            "{table: lookups/status.csv, key: s, into: x, default: 1}",
            "default is used only with on_missing: default",
        ),
        (
            "{table: lookups/status.csv, key: s, into: 'a..b'}",
            "into must be a dotted path like erp.status, not 'a..b'",
        ),
        (
            "{table: lookups/status.csv, key: s, into: x, column: nope}",
            "lookups/status.csv:1:1: no column 'nope' (columns: code, erp, label)",
        ),
        (
            "{table: lookups/status.csv, key: s, into: x, key_column: id}",
            "lookups/status.csv:1:1: no key column 'id' (columns: code, erp, label)",
        ),
        ("{table: lookups/none.csv, key: s, into: x}", "file not found: lookups/none.csv"),
        ("{table: lookups/status.csv, key: 's +', into: x}", "JSONata syntax error"),
        ("{table: lookups/status.csv, key: s, into: x, on_missing: ignore}", "on_missing"),
    ],
)
def test_config_errors_at_lint(table, tmp_path, snippet, message):
    with pytest.raises(ValidationError) as caught:
        build_component("step", f"lookup: {snippet}", tmp_path)
    assert message in str(caught.value)


def test_duplicate_key_in_the_table_is_a_lint_error_with_its_line(write, tmp_path):
    write("lookups/dup.csv", "code,name\nA,1\nB,2\nA,3\n")
    with pytest.raises(ValidationError, match=r"lookups/dup\.csv:4:1: duplicate key 'A'"):
        build_component("step", "lookup: {table: lookups/dup.csv, key: k, into: x}", tmp_path)


def test_a_fixed_table_is_picked_up_by_the_next_flow_start(table, write, step_of, run):
    snippet = "lookup: {table: lookups/status.csv, key: status, into: erp}"
    first = run(step_of(snippet), [{"status": "S"}])
    assert first.reasons == ["lookup: field status: key not found in lookups/status.csv"]
    write("lookups/status.csv", STATUS + "S,SHIPPED,Shipped\n")
    again = run(step_of(snippet), [{"status": "S"}])
    assert again.payloads == [{"status": "S", "erp": "SHIPPED"}]


# --- properties -------------------------------------------------------------------------

codes = st.text(alphabet="ABCxyz0129-_", min_size=1, max_size=6)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # `run` holds no state
)
@given(
    table=st.dictionaries(codes, codes, min_size=1, max_size=12),
    probes=st.lists(codes, min_size=1, max_size=10),
    on_missing=st.sampled_from(["dead_letter", "null", "keep", "default"]),
)
def test_any_key_in_the_table_is_found_and_any_other_follows_on_missing(
    run, table, probes, on_missing
):
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        (project / "lookups").mkdir()
        rows = "".join(f"{key},{value}\n" for key, value in table.items())
        (project / "lookups" / "codes.csv").write_text("key,value\n" + rows, encoding="utf-8")
        extra = ", default: MISSING" if on_missing == "default" else ""
        step = build_component(
            "step",
            "lookup: {table: lookups/codes.csv, key: k, into: v,"
            f" on_missing: {on_missing}{extra}}}",
            project,
        )
        keys = [*table, *probes]
        result = run(step, [{"k": key} for key in keys])
    outputs = iter(result.payloads)
    reasons = iter(result.reasons)
    for key in keys:
        if key in table:
            assert next(outputs) == {"k": key, "v": table[key]}
        elif on_missing == "dead_letter":
            assert next(reasons) == "lookup: field k: key not found in lookups/codes.csv"
        elif on_missing == "keep":
            assert next(outputs) == {"k": key}
        else:
            assert next(outputs) == {"k": key, "v": None if on_missing == "null" else "MISSING"}
    assert next(outputs, None) is None
    assert next(reasons, None) is None
