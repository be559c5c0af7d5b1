"""The analytical engine and the sort-merge give the same report on the same CSV files.

Random data sets with planted missing, extra, duplicate and differing records, under random
rules (tolerances, every normalisation, maps, blank-is-null, renamed target fields, listed
or all fields, ignored and masked fields, composite keys), are reconciled twice: once by the
engine (DuckDB) and once by the sort-merge, the reference. Counts, examples and their order
must agree exactly.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dovetail.reconcile import ReconcileReport, csv_layout, engine, run

from .support import reconcile, write_csv

pytest.importorskip("duckdb", reason="the reconcile extra (duckdb) is not installed")

NORMALIZERS = [
    "strip",
    "lower",
    "upper",
    "collapse_whitespace",
    "blank_as_null",
    "number",
    "no_leading_zeros",
]
VALUES = st.one_of(
    st.sampled_from(["", " ", "a", "A", " a ", "a  b", "007", "7", "12.50", "12.5", "1e2", "N"]),
    st.decimals(-1000, 1000, places=2, allow_nan=False).map(str),
    st.text(st.characters(codec="utf-8", exclude_characters="\r\x00"), max_size=6),
)


def _report_of(report: ReconcileReport) -> dict[str, Any]:
    shown = report.as_dict()
    for moving in ("duration_seconds", "started_at"):
        shown.pop(moving, None)
    return shown


def _both(
    monkeypatch: pytest.MonkeyPatch, root: Path, config: dict[str, Any]
) -> tuple[ReconcileReport, ReconcileReport, bool]:
    """The engine's report, the sort-merge's, and whether the engine ran the first."""
    used: list[bool] = []

    def spying(*args: Any) -> engine.ColumnarReconciler | None:
        found = engine.open_engine(*args)
        if found is not None:
            stage = found.stage

            def staged(*inner: Any) -> bool:
                used.append(stage(*inner))
                return used[-1]

            found.stage = staged  # type: ignore[method-assign]
        return found

    with monkeypatch.context() as patch:
        patch.setattr(run, "open_engine", spying)
        fast = reconcile(root, **config)
    with monkeypatch.context() as patch:
        patch.setattr(run, "open_engine", lambda *args: None)
        reference = reconcile(root, **config)
    return fast, reference, bool(used and used[0])


@st.composite
def data_sets(draw: st.DrawFn) -> dict[str, Any]:
    fields = ["a", "b", "c"]
    composite = draw(st.booleans())
    key = ["id", "part"] if composite else ["id"]
    ids = draw(
        st.lists(
            st.text('xyz01 "\\é\t,\x7f\U0001f600', min_size=0, max_size=3), max_size=25, unique=True
        )
    )
    source: list[dict[str, str]] = []
    target: list[dict[str, str]] = []
    for index, ident in enumerate(ids):
        row = {"id": ident, "part": str(index % 2)}
        row.update({name: draw(VALUES) for name in fields})
        role = draw(st.sampled_from(["equal", "missing", "extra", "differ", "dup_s", "dup_t"]))
        if role != "extra":
            source.append(row)
        if role == "dup_s":
            source.append({**row, "a": draw(VALUES)})
        if role != "missing":
            changed = dict(row)
            if role == "differ":
                changed[draw(st.sampled_from(fields))] = draw(VALUES)
            target.append(changed)
        if role == "dup_t":
            target.append(dict(row))
    rules: dict[str, Any] = {}
    for name in fields:
        rule: dict[str, Any] = {}
        if draw(st.booleans()):
            rule["normalize"] = draw(st.lists(st.sampled_from(NORMALIZERS), max_size=3))
        if draw(st.booleans()):
            rule["tolerance"] = draw(st.sampled_from([0, 0.01, 0.5, 10]))
        if draw(st.integers(0, 5)) == 0:
            rule["map"] = {draw(VALUES): draw(VALUES)}
        if rule:
            rules[name] = rule
    renamed = draw(st.booleans())
    if renamed:
        rules.setdefault("b", {})["target_field"] = "b_target"
        target = [{("b_target" if k == "b" else k): v for k, v in r.items()} for r in target]
    config: dict[str, Any] = {"key": key, "fields": rules, "examples": draw(st.integers(0, 5))}
    if draw(st.booleans()):
        config["blank_is_null"] = False
    choice = draw(st.sampled_from(["all", "listed", "ignore", "mask"]))
    if choice == "listed":
        config["compare"] = "listed"
        config["fields"] = {**rules, "a": rules.get("a", {}), "c": rules.get("c", {})}
    elif choice == "ignore":
        config["ignore"] = ["c"]
    elif choice == "mask":
        config["mask"] = ["a"]
    if not composite:
        source = [{k: v for k, v in r.items() if k != "part"} for r in source]
        target = [{k: v for k, v in r.items() if k != "part"} for r in target]
    columns = [*key, *fields]
    return {
        "source": source,
        "target": target,
        "config": config,
        "columns": {
            "source": columns,
            "target": [("b_target" if renamed and c == "b" else c) for c in columns],
        },
    }


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data_sets())
def test_engine_and_sort_merge_agree(monkeypatch: pytest.MonkeyPatch, data: dict[str, Any]) -> None:
    config = data["config"]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for side in ("source", "target"):
            write_csv(root / f"{side}.csv", data[side], data["columns"][side])
        fast, reference, engine_ran = _both(
            monkeypatch,
            root,
            {"source": {"csv": "source.csv"}, "target": {"csv": "target.csv"}, **config},
        )
        # the engine runs unless a quote beside a space could be split differently
        plain = all(
            csv_layout.read_header(root / f"{side}.csv", ",") for side in ("source", "target")
        )
    assert engine_ran == plain
    assert _report_of(fast) == _report_of(reference)


def test_a_malformed_row_hands_the_file_to_the_sort_merge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "source.csv").write_text("id,a\n1,x\n2,y,extra\n3,z\n")
    (tmp_path / "target.csv").write_text("id,a\n1,x\n3,z\n")
    fast, reference, engine_ran = _both(
        monkeypatch,
        tmp_path,
        {"source": {"csv": "source.csv"}, "target": {"csv": "target.csv"}, "key": "id"},
    )
    assert not engine_ran
    assert fast.rejected_source == 1
    assert fast.examples["rejected_source"][0]["where"] == "source.csv:3"
    assert _report_of(fast) == _report_of(reference)


def test_the_first_record_of_a_repeated_missing_key_is_shown(tmp_path: Path) -> None:
    rows = [{"id": "2", "a": "first"}, {"id": "1", "a": "x"}, {"id": "2", "a": "second"}]
    write_csv(tmp_path / "source.csv", rows, ["id", "a"])
    write_csv(tmp_path / "target.csv", [{"id": "1", "a": "x"}], ["id", "a"])
    report = reconcile(
        tmp_path, source={"csv": "source.csv"}, target={"csv": "target.csv"}, key="id"
    )
    assert report.examples["missing"] == [{"key": "2", "fields": {"a": "first"}}]
    assert report.examples["duplicate_source"] == [{"key": "2", "records": 2}]
    assert (report.matched, report.equal, report.missing_in_target) == (1, 1, 1)


EDGE_FILES = {
    "blank line": "id,a\n1,x\n\n2,y\n",
    "blank line, one column": "id\n1\n\n2\n",
    "CRLF": "id,a\r\n1,x\r\n2,y\r\n",
    "lone CR": "id,a\r1,x\r2,y\r",
    "short row": "id,a\n1\n2,y\n",
    "quote inside a field": 'id,a\n1,x"y\n2,y\n',
    "space before a quote": 'id,a\n1, "x"\n2,y\n',
    "text after a closing quote": 'id,a\n1,"x"y\n2,y\n',
    "new line in quotes": 'id,a\n1,"x\ny"\n2,y\n',
    "no final new line": "id,a\n1,x\n2,y",
    "unclosed quote": 'id,a\n1,"x\n2,y\n',
    "empty and quoted empty": 'id,a\n1,""\n2,\n',
    "only a header": "id,a\n",
    "backslash before a quote": 'id,a\n1,"x\\"y"\n',
    "repeated column": "id,a,a\n1,x,y\n",
}


@pytest.mark.parametrize("text", EDGE_FILES.values(), ids=EDGE_FILES.keys())
def test_files_the_reader_splits_its_own_way_give_the_same_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    """Where DuckDB and the file reader could disagree, the sort-merge reads the file."""
    (tmp_path / "source.csv").write_text(text, newline="")
    (tmp_path / "target.csv").write_text("id,a\n1,x\n2,y\n")
    config = {"source": {"csv": "source.csv"}, "target": {"csv": "target.csv"}, "key": "id"}

    def outcome() -> Any:
        try:
            return _report_of(reconcile(tmp_path, **config))
        except Exception as exc:  # a file the reader refuses must be refused the same way
            return f"{type(exc).__name__}: {exc}"

    fast = outcome()
    with monkeypatch.context() as patch:
        patch.setattr(run, "open_engine", lambda *args: None)
        reference = outcome()
    assert fast == reference


@pytest.mark.parametrize("normalize", [["lower"], ["strip"], ["strip", "upper"], ["upper"]])
def test_case_and_space_rules_in_sql_answer_as_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, normalize: list[str]
) -> None:
    """ASCII text is normalised in SQL; other text goes to Python; the answers are the same."""
    pairs = [
        ("a", "A"),
        (" a\t", "a"),
        ("\x1ca\x1f", "A"),
        ("\x0ba\x0c", "a"),
        ("", " "),
        ("x", ""),
        ("İ", "i̇"),
        ("ß", "SS"),
        ("ǅ", "ǆ"),
        ("\u00a0a", "a"),
        ("\u2003A ", "a"),
        ("ab", "a b"),
    ]
    source = [{"id": str(i), "v": a} for i, (a, _) in enumerate(pairs)]
    target = [{"id": str(i), "v": b} for i, (_, b) in enumerate(pairs)]
    write_csv(tmp_path / "source.csv", source, ["id", "v"])
    write_csv(tmp_path / "target.csv", target, ["id", "v"])
    for blank_is_null in (True, False):
        config = {
            "source": {"csv": "source.csv"},
            "target": {"csv": "target.csv"},
            "key": "id",
            "fields": {"v": {"normalize": normalize}},
            "blank_is_null": blank_is_null,
            "examples": 100,
        }
        fast, reference, engine_ran = _both(monkeypatch, tmp_path, config)
        assert engine_ran
        assert _report_of(fast) == _report_of(reference)


@pytest.mark.parametrize("tolerance", [0, 0.01, 0.5, 1e-20, 10])
def test_tolerances_in_sql_answer_as_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tolerance: float
) -> None:
    """Plain numbers are compared in SQL, every other text in Python; the answers agree."""
    pairs = [
        ("12.50", "12.5"),
        ("1.005", "1.015"),
        ("1.005", "1.0151"),
        ("1e2", "100"),
        ("+1", "1"),
        (" 1", "1"),
        ("-0", "0"),
        ("0.1234567890123456789", "0.1234567890123456788"),
        ("0.123456789012345678", "0.123456789012345677"),
        ("99999999999999999999", "99999999999999999998"),
        ("999999999999999999", "-999999999999999999"),
        ("5.", "5"),
        (".5", "0.5"),
        ("", "0"),
        ("abc", "abd"),
    ]
    source = [{"id": str(i), "v": a} for i, (a, _) in enumerate(pairs)]
    target = [{"id": str(i), "v": b} for i, (_, b) in enumerate(pairs)]
    write_csv(tmp_path / "source.csv", source, ["id", "v"])
    write_csv(tmp_path / "target.csv", target, ["id", "v"])
    config = {
        "source": {"csv": "source.csv"},
        "target": {"csv": "target.csv"},
        "key": "id",
        "fields": {"v": {"tolerance": tolerance}},
        "examples": 100,
    }
    fast, reference, engine_ran = _both(monkeypatch, tmp_path, config)
    assert engine_ran
    assert _report_of(fast) == _report_of(reference)
