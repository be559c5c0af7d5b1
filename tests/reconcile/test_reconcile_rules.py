"""Field comparison rules: canonical values, tolerance, normalisation, value maps."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dovetail.reconcile.config import FieldRule
from dovetail.reconcile.values import FieldComparer, canonical

from .support import reconcile, write_csv, write_jsonl


def comparer(**rule: object) -> FieldComparer:
    return FieldComparer(FieldRule.model_validate(rule), blank_is_null=True)


def test_tolerance_accepts_differences_up_to_the_limit_and_no_further() -> None:
    rule = comparer(tolerance=0.01)
    assert rule.equal("10.00", 10.01)
    assert rule.equal("10.00", "9.99")
    assert not rule.equal("10.00", "10.011")
    assert not rule.equal("10.00", "abc")


def test_a_number_equals_its_numeric_text_but_two_texts_compare_as_text() -> None:
    rule = comparer()
    assert rule.equal("12.50", 12.5)
    assert rule.equal(Decimal("100"), "100.0")
    assert not rule.equal("007", "7")
    assert comparer(normalize=["number"]).equal("007", "7.00")
    assert comparer(normalize=["no_leading_zeros"]).equal("007", "7")


def test_normalisations_apply_in_order_to_both_sides() -> None:
    rule = comparer(normalize=["lower", "strip"])
    assert rule.equal("  Ann@Example.COM ", "ann@example.com")
    assert not comparer().equal("Ann@example.com", "ann@example.com")
    assert comparer(normalize="collapse_whitespace").equal("a   b\t c", "a b c")
    assert comparer(normalize=["upper"]).equal("de", "DE")


def test_map_translates_source_values_only() -> None:
    rule = comparer(map={"N": "new", "S": "shipped"})
    assert rule.equal("N", "new")
    assert not rule.equal("N", "N")
    assert rule.equal("cancelled", "cancelled")


def test_blank_and_null_are_equal_unless_configured_otherwise() -> None:
    assert comparer().equal("", None)
    strict = FieldComparer(FieldRule(), blank_is_null=False)
    assert not strict.equal("", None)
    assert strict.equal(None, None)
    assert comparer(normalize=["blank_as_null"]).equal("   ", None)


@given(st.decimals(allow_nan=False, allow_infinity=False, places=4))
def test_canonical_numbers_match_their_text_in_any_spelling(number: Decimal) -> None:
    rule = comparer()
    assert rule.equal(str(number), number)
    assert rule.equal(format(number, "f") + "0", float(number)) or abs(number) > 10**12
    assert canonical(number) == canonical(Decimal(format(number, "f")))


@given(st.text(max_size=20), st.text(max_size=20))
def test_text_values_are_equal_exactly_when_identical_without_rules(a: str, b: str) -> None:
    assert comparer().equal(a, b) == (a == b or (a == "" and b == ""))


def test_rules_apply_end_to_end_including_renamed_target_fields(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "source.csv",
        [
            {"id": "1", "amount": "10.00", "email": "A@X.COM ", "status": "N", "at": "x"},
            {"id": "2", "amount": "20.00", "email": "b@x.com", "status": "S", "at": "y"},
        ],
        ["id", "amount", "email", "status", "at"],
    )
    write_jsonl(
        tmp_path / "target.jsonl",
        [
            {"id": 1, "total": 10.004, "email": "a@x.com", "status": "new", "at": "other"},
            {"id": 2, "total": 20.5, "email": "b@x.com", "status": "shipped", "at": "other"},
        ],
    )
    report = reconcile(
        tmp_path,
        source={"csv": "source.csv"},
        target={"jsonl": "target.jsonl"},
        key=["id"],
        fields={
            "amount": {"tolerance": 0.01, "target_field": "total"},
            "email": {"normalize": ["lower", "strip"]},
            "status": {"map": {"N": "new", "S": "shipped"}},
        },
        ignore=["at"],
    )
    assert (report.equal, report.mismatched_records) == (1, 1)
    assert report.examples["mismatch"] == [
        {"key": "2", "field": "amount", "source": "20.00", "target": 20.5}
    ]
    assert report.accuracy == pytest.approx(50.0)
    assert not report.passed


def test_listed_compare_ignores_undeclared_fields_and_masks_values(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "s.jsonl", [{"id": 1, "email": "a@x", "note": "x"}])
    write_jsonl(tmp_path / "t.jsonl", [{"id": 1, "email": "b@x", "note": "y"}])
    report = reconcile(
        tmp_path,
        source={"jsonl": "s.jsonl"},
        target={"json": "t.jsonl"},
        key="id",
        fields={"email": {}},
        compare="listed",
        mask=["email"],
    )
    assert report.mismatches_by_field == {"email": 1}
    assert report.examples["mismatch"] == [
        {"key": "1", "field": "email", "source": "***", "target": "***"}
    ]


def test_composite_keys_pair_records_on_every_key_field(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "s.csv",
        [{"a": "1", "b": "x", "v": "1"}, {"a": "1", "b": "y", "v": "2"}],
        ["a", "b", "v"],
    )
    write_jsonl(tmp_path / "t.jsonl", [{"a": 1, "b": "y", "v": 2}, {"a": 2, "b": "x", "v": 1}])
    report = reconcile(
        tmp_path, source={"csv": "s.csv"}, target={"jsonl": "t.jsonl"}, key=["a", "b"]
    )
    assert (report.matched, report.equal, report.missing_in_target) == (1, 1, 1)
    assert report.examples["missing"][0]["key"] == {"a": "1", "b": "x"}
    assert report.examples["extra"][0]["key"] == {"a": "2", "b": "x"}


def test_malformed_records_are_counted_as_rejected_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "s.jsonl").write_text('{"id": 1}\nnot json\n[1]\n{"id": 2}\n')
    write_jsonl(tmp_path / "t.jsonl", [{"id": 1}, {"id": 2}])
    report = reconcile(tmp_path, source={"jsonl": "s.jsonl"}, target={"jsonl": "t.jsonl"}, key="id")
    assert (report.rejected_source, report.equal, report.source_records) == (2, 2, 2)
    assert report.examples["rejected_source"][0]["where"] == "s.jsonl:2"
