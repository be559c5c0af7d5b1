"""Property: plant missing, extra, duplicate and mismatched records; exactly those are found."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .support import reconcile, write_csv, write_jsonl

COLUMNS = ["id", "amount", "name"]


@st.composite
def planted(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(
        st.lists(
            st.one_of(st.integers(-(10**6), 10**6).map(str), st.text(min_size=1, max_size=6)),
            min_size=1,
            max_size=40,
            unique=True,
        )
    )
    keys = [k for k in keys if "\x00" not in k and "\r" not in k and "\n" not in k]
    roles = {
        k: draw(st.sampled_from(["equal", "missing", "extra", "mismatch", "dup"])) for k in keys
    }
    return {"roles": roles, "seed": draw(st.integers(0, 2**16))}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(planted())
def test_planted_differences_are_found_exactly(plan: dict[str, Any]) -> None:
    roles: dict[str, str] = plan["roles"]
    source: list[dict[str, Any]] = []
    target: list[dict[str, Any]] = []
    for index, (key, role) in enumerate(roles.items()):
        row = {"id": key, "amount": f"{index}.50", "name": f"n{index}"}
        if role != "extra":
            source.append(row)
        if role in ("equal", "dup", "extra"):
            target.append({**row, "amount": index + 0.5})
        if role == "dup":
            target.append(dict(row))
        if role == "mismatch":
            target.append({**row, "name": f"other{index}"})
    # arrival order must not matter
    source.reverse()
    target.sort(key=lambda r: hash((r["id"], plan["seed"])))
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_csv(root / "s.csv", source, COLUMNS)
        write_jsonl(root / "t.jsonl", target)
        report = reconcile(
            root,
            source={"csv": "s.csv"},
            target={"jsonl": "t.jsonl"},
            key="id",
            examples=1000,
        )

    def of(*wanted: str) -> set[str]:
        return {k for k, role in roles.items() if role in wanted}

    assert {e["key"] for e in report.examples["missing"]} == of("missing")
    assert {e["key"] for e in report.examples["extra"]} == of("extra")
    assert {e["key"] for e in report.examples["duplicate_target"]} == of("dup")
    assert report.examples["duplicate_source"] == []
    assert {e["key"] for e in report.examples["mismatch"]} == of("mismatch")
    assert {e["field"] for e in report.examples["mismatch"]} <= {"name"}
    assert report.missing_in_target == len(of("missing"))
    assert report.extra_in_target == len(of("extra"))
    assert report.duplicate_target_keys == len(of("dup"))
    assert report.field_mismatches == report.mismatched_records == len(of("mismatch"))
    assert report.equal == len(of("equal"))
    assert report.matched == len(of("equal", "mismatch", "dup"))
    assert report.source_records == len(source)
    assert report.target_records == len(target)
    expected = 100.0 * len(of("equal")) / len(source) if source else (0.0 if target else 100.0)
    assert abs(report.accuracy - expected) < 1e-9


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=30))
def test_duplicate_source_keys_are_counted_once_each_and_never_equal(ids: list[int]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_jsonl(root / "s.jsonl", [{"id": i} for i in ids])
        write_jsonl(root / "t.jsonl", [{"id": i} for i in sorted(set(ids))])
        report = reconcile(root, source={"jsonl": "s.jsonl"}, target={"jsonl": "t.jsonl"}, key="id")
    repeated = {i for i in ids if ids.count(i) > 1}
    assert report.duplicate_source_keys == len(repeated)
    assert report.equal == len(set(ids) - repeated)
    assert report.matched == len(set(ids))
