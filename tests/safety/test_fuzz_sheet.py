"""Fuzzing the mapping-sheet loader and compiler: arbitrary text and broken-but-plausible
sheets give ``SheetError`` with a ``file:line:col`` position or a working mapping, never a
crash; a compiled mapping fails a message only with ``MappingFailed``."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dovetail.errors import MappingFailed
from dovetail.mapping.sheet import SheetError, compile_sheet, load_sheet

FUZZ = settings(
    max_examples=100,
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def compile_text(text: str, suffix: str) -> Any:
    """Load and compile ``text`` as a sheet; return the mapping, or the ``SheetError``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"sheet{suffix}"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            return compile_sheet(load_sheet(path, name=f"sheet{suffix}"), Path(tmp))
        except SheetError as exc:
            lines = text.count("\n") + 1
            for problem in exc.problems:
                assert problem.path == f"sheet{suffix}"
                assert 1 <= problem.line <= lines + 1, problem
                assert problem.col >= 1, problem
                assert problem.message
            return exc


@FUZZ
@given(text=st.text(max_size=600), suffix=st.sampled_from([".csv", ".yaml"]))
def test_arbitrary_text_is_a_positioned_sheet_error_or_a_mapping(text: str, suffix: str) -> None:
    compile_text(text, suffix)


TARGET = st.one_of(
    st.sampled_from(["id", "customer.name", "a.b", "a", "x..y", " id", "a.b.c", ""]),
    st.integers(min_value=1, max_value=120).map(lambda depth: ".".join(["t"] * depth)),
    st.text(max_size=8),
)
SOURCE = st.one_of(
    st.sampled_from(
        [
            "id",
            "=EUR",
            '="x',
            "'EUR'",
            "42",
            "$sum(lines.amount)",
            "$eval(x)",
            "first, last",
            "(((",
            "a.b[",
            "$count([1..100000000])",
            "",
            "$",
            "**",
        ]
    ),
    st.text(max_size=10),
)
TRANSFORM = st.one_of(
    st.sampled_from(
        [
            "",
            "upper",
            "uper",
            "trim|upper",
            "default:EUR",
            "concat",
            "date:%d.%m.%Y",
            "number",
            "lookup:missing.csv",
            "|",
            "upper|",
            "round:x",
        ]
    ),
    st.text(max_size=8),
)
REQUIRED = st.sampled_from(["", "yes", "no", "y", "maybe", "TRUE"])
ROW = st.tuples(TARGET, SOURCE, TRANSFORM, REQUIRED)


def target_of(row: tuple[str, str, str, str]) -> str:
    """A row's target as the loader reads it (surrounding blanks dropped)."""
    return row[0].strip()


# each sheet maps a target once: a repeated target only ever meets the duplicate check (its
# own test is in tests/mapping/test_sheet.py), never the compiler this fuzzes
ROWS = st.lists(ROW, min_size=1, max_size=8, unique_by=target_of)


def csv_sheet(rows: list[tuple[str, str, str, str]], delimiter: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(["target", "source", "transform", "required"])
    writer.writerows(rows)
    return out.getvalue()


PAYLOAD = st.dictionaries(
    st.sampled_from(["id", "a", "first", "last", "lines", "customer", "x"]),
    st.none() | st.integers() | st.text(max_size=6) | st.lists(st.integers(), max_size=3),
    max_size=6,
)


def apply(mapping: Any, payload: dict[str, Any]) -> Any:
    """The mapping's output, or the ``MappingFailed`` it raised (any other error propagates)."""
    try:
        return mapping(payload)
    except MappingFailed as exc:
        return exc


@FUZZ
@given(
    rows=ROWS,
    delimiter=st.sampled_from([",", ";"]),
    payloads=st.lists(PAYLOAD, max_size=3),
)
def test_broken_sheets_are_positioned_errors_and_compiled_ones_fail_only_with_mapping_failed(
    rows: list[tuple[str, str, str, str]], delimiter: str, payloads: list[dict[str, Any]]
) -> None:
    result = compile_text(csv_sheet(rows, delimiter), ".csv")
    if isinstance(result, SheetError):
        return
    for payload in payloads:
        outcome = apply(result, payload)
        if isinstance(outcome, MappingFailed):
            assert outcome.reason.startswith(("field ", "required field ")), outcome.reason
        else:
            assert isinstance(outcome, dict)


def test_a_target_nested_past_the_depth_limit_is_a_sheet_error_not_a_syntax_error() -> None:
    result = compile_text("target,source\n" + ".".join(["t"] * 1000) + ",id\n", ".csv")
    assert isinstance(result, SheetError)
    assert str(result) == "sheet.csv:2:1: target path nests deeper than 64 levels"


@FUZZ
@given(rows=st.lists(ROW, min_size=1, max_size=6, unique_by=target_of))
def test_yaml_sheets_with_the_same_rows_behave_alike(rows: list[tuple[str, str, str, str]]) -> None:
    lines = ["fields:"]
    for target, source, transform, required in rows:
        lines.append(f"  - target: {target!r}")
        lines.append(f"    source: {source!r}")
        lines.append(f"    transform: {transform!r}")
        lines.append(f"    required: {required!r}")
    compile_text("\n".join(lines) + "\n", ".yaml")
