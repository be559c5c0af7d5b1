"""Golden files: whole sink output compared with a readable diff, rewritten only on request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

from dovetail.config.loader import load_flow
from dovetail.testing.cases import load_case
from dovetail.testing.golden import MAX_DIFF_LINES, check_golden, readable_diff, render
from dovetail.testing.harness import CaseResult, run_case

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)
outputs = st.dictionaries(st.text(min_size=1, max_size=6), st.lists(json_values, max_size=3))


@settings(max_examples=50)
@given(outputs)
def test_rendered_golden_text_reads_back_as_the_same_output(delivered: dict[str, Any]) -> None:
    text = render(delivered)
    assert json.loads(text) == delivered
    assert text.endswith("\n") and render(json.loads(text)) == text


@settings(max_examples=40)
@given(outputs, outputs)
def test_an_update_makes_the_next_comparison_pass(
    tmp_path_factory: Any, first: dict[str, Any], second: dict[str, Any]
) -> None:
    path = tmp_path_factory.mktemp("golden") / "case.golden.json"
    assert check_golden(path, first, update=True).updated == path
    verdict = check_golden(path, second, update=False)
    assert (verdict.failures == []) == (json.loads(render(first)) == json.loads(render(second)))
    assert check_golden(path, first, update=False).failures == []


def test_a_missing_golden_file_fails_and_names_the_update_command(tmp_path: Path) -> None:
    verdict = check_golden(tmp_path / "c.golden.json", {"erp": []}, update=False)
    assert verdict.failures == [
        "golden file c.golden.json is missing; `dovetail test --update` writes it"
    ]
    assert not (tmp_path / "c.golden.json").exists()


def test_a_hand_formatted_golden_file_that_matches_passes(tmp_path: Path) -> None:
    path = tmp_path / "c.golden.json"
    path.write_text('{"erp": [{"b": 2, "a": 1}]}', encoding="utf-8")
    assert check_golden(path, {"erp": [{"a": 1, "b": 2}]}, update=False).failures == []
    assert path.read_text(encoding="utf-8") == '{"erp": [{"b": 2, "a": 1}]}'


def test_a_long_diff_is_cut_with_a_count() -> None:
    want = "\n".join(f"line {i}" for i in range(200))
    got = "\n".join(f"other {i}" for i in range(200))
    lines = readable_diff(want, got, "x").splitlines()
    assert len(lines) == MAX_DIFF_LINES + 1
    assert lines[-1].startswith("... ") and lines[-1].endswith(" more diff lines")


def _run(root: Path, update: bool = False) -> CaseResult:
    flow = load_flow(root / "flows" / "orders.yaml", strict=False)
    case = load_case(root / "tests" / "orders" / "golden.yaml", "orders", "golden")
    return anyio.run(lambda: run_case(flow, case, update_golden=update))


def test_golden_mismatch_fails_with_a_diff_and_update_rewrites_it(
    kit_project: Path, write_case: Any
) -> None:
    write_case(
        kit_project,
        "golden",
        "input: {messages: [{order_id: G-1, total: 5}, {order_id: G-2, total: 0}]}\n"
        "partner: {}\n"
        "expect: {golden: true}\n",
    )
    golden = kit_project / "tests" / "orders" / "golden.golden.json"

    missing = _run(kit_project)
    assert not missing.passed and "golden file" in missing.failures[0]
    assert "missing" in missing.failures[0] and not golden.exists()

    written = _run(kit_project, update=True)
    assert written.passed and written.updated == [golden]
    assert json.loads(golden.read_text()) == {
        "audit": [{"order_id": "G-1", "total": 5}],
        "erp": [{"order_id": "G-1", "total": 5}],
    }
    assert _run(kit_project).passed

    golden.write_text(golden.read_text().replace('"total": 5', '"total": 7'))
    changed = _run(kit_project)
    assert not changed.passed
    failure = changed.failures[0]
    assert failure.startswith("output differs from golden file tests/orders/golden.golden.json")
    assert '-      "total": 7' in failure and '+      "total": 5' in failure

    assert _run(kit_project, update=True).updated == [golden]
    assert _run(kit_project).passed and _run(kit_project).updated == []


def test_a_golden_file_is_checked_even_when_the_case_does_not_ask(
    kit_project: Path, write_case: Any
) -> None:
    write_case(kit_project, "golden", "input: {message: {order_id: G-3, total: 1}}\n")
    golden = kit_project / "tests" / "orders" / "golden.golden.json"
    golden.write_text('{"erp": [], "audit": []}')
    result = _run(kit_project)
    assert not result.passed and "differs from golden file" in result.failures[0]
