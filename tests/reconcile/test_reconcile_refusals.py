"""Reconciliation refuses what it cannot do: a key or rule naming a field the data does not
hold is a located error with a did-you-mean; a verdict never rounds a failure up to the
threshold; every report records the rules used and when it ran."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from dovetail.cli.app import app
from dovetail.errors import ConfigError
from dovetail.reconcile import ReconcileReport
from dovetail.reconcile.render import render, verdict

from .support import reconcile, write_csv, write_jsonl

runner = CliRunner()

CONFIG = """\
name: orders
source: {csv: data/orders.csv}
target: {jsonl: data/erp.jsonl}
key: [KEY]
fields:
  RULE: {tolerance: 0.01}
threshold: 99.5
"""


@pytest.fixture
def data(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (project / "data").mkdir()
    rows = [{"order_id": str(i), "amount": f"{i}.00"} for i in range(1, 6)]
    write_csv(project / "data" / "orders.csv", rows, ["order_id", "amount"])
    write_jsonl(
        project / "data" / "erp.jsonl",
        [{"order_id": i, "total": i, "erp_only": "x"} for i in range(1, 6)],
    )
    (project / "reconcile").mkdir()
    monkeypatch.chdir(project)
    return project


def _run(project: Path, key: str, rule: str, *args: str) -> tuple[int, str]:
    (project / "reconcile" / "orders.yaml").write_text(
        CONFIG.replace("KEY", key).replace("RULE", rule)
    )
    result = runner.invoke(app, ["reconcile", "orders", *args])
    return result.exit_code, result.output


def test_a_key_in_neither_file_is_a_located_error_with_a_did_you_mean(data: Path) -> None:
    code, output = _run(data, "oder_id", "amount")
    assert code == 2, output
    assert output.startswith("reconcile/orders.yaml:4:7: key field 'oder_id' is in neither")
    assert "(did you mean 'order_id'?)" in output
    assert "accuracy" not in output


def test_a_tolerance_on_a_field_in_neither_file_is_an_error_not_ignored(data: Path) -> None:
    code, output = _run(data, "order_id", "amont")
    assert code == 2, output
    assert "reconcile/orders.yaml:6:3: field 'amont' is in neither the source nor the target" in (
        output
    )
    assert "(did you mean 'amount'?)" in output


def test_a_rule_on_a_field_only_the_source_holds_says_so(data: Path) -> None:
    code, output = _run(data, "order_id", "amount")
    assert code == 2, output
    assert "field 'amount' is in the source but not in the target" in output
    assert "target fields: erp_only, order_id, total" in output
    assert "target_field" in output


def test_renamed_target_field_passes_and_one_sided_fields_are_reported(data: Path) -> None:
    config = (
        CONFIG.replace("KEY", "order_id")
        .replace("RULE", "amount")
        .replace("{tolerance: 0.01}", "{tolerance: 0.01, target_field: total}")
    )
    (data / "reconcile" / "orders.yaml").write_text(config)
    result = runner.invoke(app, ["reconcile", "orders", "--json"])
    report = orjson.loads(result.output)
    assert report["target_only_fields"] == ["erp_only"]
    assert report["source_only_fields"] == []
    text = runner.invoke(app, ["reconcile", "orders"]).output
    assert "only in the target (compared with a missing value" in text
    assert "erp_only" in text


def test_flag_errors_are_located_at_the_options(data: Path) -> None:
    result = runner.invoke(
        app,
        ["reconcile", "--source", "data/orders.csv", "--target", "data/erp.jsonl", "-k", "id"],
    )
    assert result.exit_code == 2, result.output
    assert result.output.startswith("<options>:1:1: key field 'id' is in neither")


def test_ignore_and_mask_must_name_an_existing_field(tmp_path: Path) -> None:
    write_csv(tmp_path / "a.csv", [{"id": "1", "name": "x"}], ["id", "name"])
    with pytest.raises(ConfigError) as raised:
        reconcile(
            tmp_path,
            source={"csv": str(tmp_path / "a.csv")},
            target={"csv": str(tmp_path / "a.csv")},
            key=["id"],
            ignore=["nme"],
            mask=["secret"],
        )
    messages = [p.message for p in raised.value.problems]
    assert any(m.startswith("ignore names 'nme'") and "did you mean 'name'" in m for m in messages)
    assert any(m.startswith("mask names 'secret'") for m in messages)


def test_an_empty_side_is_not_checked(tmp_path: Path) -> None:
    write_csv(tmp_path / "a.csv", [{"id": "1"}], ["id"])
    (tmp_path / "b.jsonl").write_text("")
    report = reconcile(
        tmp_path,
        source={"csv": str(tmp_path / "a.csv")},
        target={"jsonl": str(tmp_path / "b.jsonl")},
        key=["id"],
    )
    assert report.missing_in_target == 1


def _report(equal: int, total: int, threshold: float) -> ReconcileReport:
    report = ReconcileReport(
        name="r", source="s", target="t", key=["id"], threshold=threshold, example_limit=0
    )
    report.source_records = report.target_records = total
    report.equal = report.matched = equal
    return report


def test_a_near_miss_is_never_shown_as_the_threshold() -> None:
    report = _report(999_996, 1_000_000, 100.0)
    assert not report.passed
    assert verdict(report) == "FAILED: accuracy 99.99% (threshold 100%)"
    assert orjson.loads(render(report, "json"))["accuracy"] == 99.9996
    tiny = _report(99_999_999, 100_000_000, 100.0)
    assert orjson.loads(render(tiny, "json"))["accuracy"] < 100


@given(
    total=st.integers(min_value=1, max_value=10**9),
    data=st.data(),
    threshold=st.decimals(min_value=0, max_value=100, places=3).map(float),
)
def test_shown_accuracy_sides_with_the_exact_verdict(
    total: int, data: st.DataObject, threshold: float
) -> None:
    equal = data.draw(st.integers(min_value=0, max_value=total))
    report = _report(equal, total, threshold)
    exact_threshold = Fraction(Decimal(repr(threshold)))
    assert report.passed == (Fraction(100 * equal, total) >= exact_threshold)
    shown = report.shown_accuracy()
    assert (Fraction(shown) >= exact_threshold) == report.passed
    assert f"{'PASSED' if report.passed else 'FAILED'}: accuracy {shown}%" in verdict(report)


def test_every_format_records_the_rules_and_when_it_ran(tmp_path: Path) -> None:
    write_csv(tmp_path / "a.csv", [{"id": "1", "amount": "1.00"}], ["id", "amount"])
    write_jsonl(tmp_path / "b.jsonl", [{"id": 1, "amount": 1.004}])
    before = datetime.now(UTC)
    report = reconcile(
        tmp_path,
        source={"csv": str(tmp_path / "a.csv")},
        target={"jsonl": str(tmp_path / "b.jsonl")},
        key=["id"],
        fields={"amount": {"tolerance": 0.01, "normalize": ["strip"]}},
        ignore=[],
        threshold=99.5,
    )
    assert report.started_at is not None
    assert before <= report.started_at <= datetime.now(UTC) + timedelta(seconds=1)
    stamp = report.started_at.isoformat().replace("+00:00", "Z")
    as_json = orjson.loads(render(report, "json"))
    assert as_json["started_at"] == stamp
    assert as_json["rules"]["key"] == ["id"]
    assert as_json["rules"]["fields"] == {"amount": {"tolerance": 0.01, "normalize": ["strip"]}}
    assert as_json["rules"]["threshold"] == 99.5
    for fmt in ("markdown", "html"):
        text = render(report, fmt)
        assert f"run at {stamp}" in text, fmt
        assert "rule amount: tolerance 0.01; normalize strip" in text, fmt
        assert "threshold: 99.5%" in text, fmt
