"""Property: a compiled sheet behaves like a straightforward row-by-row interpretation.

Random sheets of valid rows (paths, constants, empty sources, concat, transform chains,
required flags, nested targets) are written as CSV, compiled, and run over random flat
payloads; the result must equal what the reference interpreter below computes, and they
must fail on the same field.
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dovetail.errors import MappingFailed
from dovetail.mapping.sheet import SheetError, compile_sheet, load_sheet

KEYS = ["a", "b", "c", "d", "e"]
WORD = st.text(alphabet="abcXYZ019", min_size=1, max_size=6)


class RefFailed(Exception):
    """The reference interpretation could not convert a value."""


def ref_text(value: Any) -> str | None:
    if value is None:
        return None
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)


def ref_empty(value: Any) -> bool:
    return value is None or value == ""


def ref_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool | int):
        return None if value is None else int(value)
    text = value.strip()
    if not text:
        return None
    if not re.fullmatch(r"-?[0-9]+", text):
        raise RefFailed
    return int(text)


def ref_bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if value in (0, 1):
            return bool(value)
        raise RefFailed
    text = value.strip().lower()
    if not text:
        return None
    if text in ("true", "yes", "y", "1", "on", "t"):
        return True
    if text in ("false", "no", "n", "0", "off", "f"):
        return False
    raise RefFailed


def ref_step(step: str, value: Any) -> Any:
    name, _, arg = step.partition(":")
    if name == "default":
        return arg if ref_empty(value) else value
    if value is None:
        return None
    if name == "upper":
        return ref_text(value).upper()
    if name == "lower":
        return ref_text(value).lower()
    if name == "trim":
        return ref_text(value).strip()
    if name == "string":
        return ref_text(value)
    if name == "prefix":
        return arg + ref_text(value)
    if name == "suffix":
        return ref_text(value) + arg
    if name == "truncate":
        return ref_text(value)[: int(arg)]
    if name == "int":
        return ref_int(value)
    if name == "bool":
        return ref_bool(value)
    if name == "map":
        codes = dict(pair.split("=") for pair in arg.split(";"))
        return codes.get(ref_text(value))
    raise AssertionError(step)


def ref_chain(steps: list[str], value: Any) -> Any:
    for step in steps:
        value = ref_step(step, value)
    return value


@dataclass
class Row:
    target: str
    source: str
    steps: list[str]
    required: bool
    concat: str | None = None  # separator when the row concatenates its sources
    after: tuple[str, ...] = ()  # steps after concat

    @property
    def transform(self) -> str:
        if self.concat is None:
            return "|".join(self.steps)
        return "|".join([*self.steps, f"concat:{self.concat}", *self.after])

    @property
    def constant(self) -> bool:
        parts = self.source.split(",") if self.concat is not None else [self.source]
        return all(not p or p.startswith("=") for p in parts)

    def value(self, payload: dict[str, Any]) -> Any:
        def read(source: str) -> Any:
            if not source:
                return None
            if source.startswith("="):
                return source[1:]
            return payload.get(source)

        if self.concat is None:
            return ref_chain(self.steps, read(self.source))
        parts = [ref_chain(self.steps, read(p)) for p in self.source.split(",")]
        texts = [ref_text(p) for p in parts if not ref_empty(p)]
        joined = self.concat.join(texts) if texts else None
        return ref_chain(list(self.after), joined)


text_steps = st.sampled_from(["upper", "lower", "trim", "string"])
steps = st.one_of(
    text_steps,
    text_steps,
    text_steps,
    st.sampled_from(["int", "bool"]),
    WORD.map(lambda w: f"prefix:{w}"),
    WORD.map(lambda w: f"suffix:{w}"),
    WORD.map(lambda w: f"default:{w}"),
    st.integers(min_value=0, max_value=5).map(lambda n: f"truncate:{n}"),
    st.dictionaries(WORD, WORD, min_size=1, max_size=3).map(
        lambda codes: "map:" + ";".join(f"{k}={v}" for k, v in codes.items())
    ),
)
single_source = st.one_of(st.sampled_from(KEYS), WORD.map(lambda w: f"={w}"), st.just(""))


@st.composite
def rows(draw: st.DrawFn, index: int) -> Row:
    group = draw(st.sampled_from(["", "g0.", "g1.", "g0.h."]))
    chain = draw(st.lists(steps, max_size=3))
    required = draw(st.sampled_from([False, False, True]))
    if draw(st.booleans()):
        return Row(f"{group}t{index}", draw(single_source), chain, required)
    sources = draw(st.lists(st.sampled_from(KEYS), min_size=2, max_size=3))
    separator = draw(st.sampled_from(["-", "/", "_"]))
    after = tuple(draw(st.lists(steps, max_size=2)))
    return Row(f"{group}t{index}", ",".join(sources), chain, required, separator, after)


@st.composite
def sheets(draw: st.DrawFn) -> list[Row]:
    count = draw(st.integers(min_value=1, max_value=8))
    return [draw(rows(i)) for i in range(count)]


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-50, max_value=50),
    st.sampled_from(["yes", "no", " Y ", "0", "1", "", "  ", "12"]),
    st.text(alphabet="abcXYZ019 ", max_size=8),
)
payloads = st.dictionaries(st.sampled_from(KEYS), values, min_size=3)


def write_sheet(directory: Path, sheet: list[Row]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["target", "source", "transform", "required", "note"])
    for row in sheet:
        writer.writerow(
            [row.target, row.source, row.transform, "yes" if row.required else "no", ""]
        )
    path = directory / "sheet.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def reference(sheet: list[Row], payload: dict[str, Any]) -> tuple[str, Any]:
    """("ok", output) or ("fail", reason prefix) by plain row-by-row interpretation."""
    out: dict[str, Any] = {}
    computed = []
    for row in sheet:
        try:
            computed.append((row, row.value(payload)))
        except RefFailed:
            return "fail", f"field {row.target}: "
    for row, value in computed:
        if row.required and (ref_empty(value) or value == []):
            return "fail", f"required field {row.target} is empty"
    for row, value in computed:
        *parents, last = row.target.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return "ok", out


def constant_rows_are_valid(sheet: list[Row]) -> bool:
    for row in sheet:
        if row.constant:
            try:
                value = row.value({})
            except RefFailed:
                return False
            if row.required and ref_empty(value):
                return False
    return True


@settings(max_examples=150, deadline=None)
@given(sheets(), st.lists(payloads, min_size=1, max_size=4))
def test_compiled_sheet_matches_reference_interpretation(sheet, inputs):
    with tempfile.TemporaryDirectory() as folder:
        path = write_sheet(Path(folder), sheet)
        if not constant_rows_are_valid(sheet):
            with pytest.raises(SheetError):
                compile_sheet(load_sheet(path), Path(folder))
            return
        mapping = compile_sheet(load_sheet(path), Path(folder))
    for payload in inputs:
        status, expected = reference(sheet, payload)
        if status == "ok":
            assert mapping(payload) == expected
        else:
            with pytest.raises(MappingFailed) as caught:
                mapping(payload)
            assert caught.value.reason.startswith(expected)
