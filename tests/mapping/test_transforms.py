"""The transform vocabulary: each transform's contract, failures, and properties."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dovetail.mapping.lookup_table import LookupTable, load_table
from dovetail.mapping.transforms import (
    VOCABULARY,
    TransformCall,
    TransformFailed,
    TransformSpecError,
    build_transform,
    join_parts,
    parse_chain,
)


def _no_tables(name: str) -> LookupTable:
    raise ValueError(f"no table {name}")


def transform(text: str, tables=_no_tables):
    (call,) = parse_chain(text)
    return build_transform(call, tables)


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ("upper", "abc", "ABC"),
        ("upper", 12, "12"),
        ("upper", None, None),
        ("lower", "ÄB", "äb"),
        ("trim", "  a b \t", "a b"),
        ("string", True, "true"),
        ("string", 1.5, "1.5"),
        ("string", {"a": 1}, '{"a":1}'),
        ("string", None, None),
        ("int", " 42 ", 42),
        ("int", "12.0", 12),
        ("int", 7.0, 7),
        ("int", "", None),
        ("number", "12", 12),
        ("number", "12.5", 12.5),
        ("number", "1e3", 1000.0),
        ("number", 3, 3),
        ("number", "  ", None),
        ("decimal:2", "12.345", "12.35"),
        ("decimal:2", "12.344", "12.34"),
        ("decimal:2", 2.675, "2.68"),
        ("decimal:0", "2.5", "3"),
        ("decimal:2", "-0.001", "0.00"),
        ("decimal:8", "0.000000011", "0.00000001"),
        ("decimal:2", "", None),
        ("bool", "Yes", True),
        ("bool", "n", False),
        ("bool", 0, False),
        ("bool", "", None),
        ("date:%d.%m.%Y", "2024-03-05", "05.03.2024"),
        ("date:%Y-%m-%d %H:%M", "2024-03-05T10:07:00Z", "2024-03-05 10:07"),
        ("date:%Y-%m-%d", "05.03.2024", "2024-03-05"),
        ("date:%Y-%m-%d", "5 Mar 2024", "2024-03-05"),
        ("date:%Y-%m-%d", "Tue, 05 Mar 2024 10:00:00 +0000", "2024-03-05"),
        ("date:%Y-%m-%d", "20240305", "2024-03-05"),
        ("date:iso", "2024-03-05", "2024-03-05"),
        ("date:iso", "2024-03-05T10:00:00+02:00", "2024-03-05T10:00:00+02:00"),
        ("date:%d %B %Y", "2024-03-05", "05 March 2024"),
        ("date:%m/%d/%Y>%Y-%m-%d", "03/05/2024", "2024-03-05"),
        ("date:%Y", date(2020, 1, 2), "2020"),
        ("date:%Y", "", None),
        ("default:EUR", None, "EUR"),
        ("default:EUR", "", "EUR"),
        ("default:EUR", [], "EUR"),
        ("default:EUR", "USD", "USD"),
        ("default:0", 0, 0),
        ("map:A=active;I=inactive", "A", "active"),
        ("map:A=active;I=inactive", "X", None),
        ("map:A=active; *=other", "X", "other"),
        ("map:1=one", 1, "one"),
        ("prefix:'Mr. '", "Smith", "Mr. Smith"),
        ("suffix:-01", 7, "7-01"),
        ("truncate:3", "abcdef", "abc"),
        ("truncate:3", None, None),
    ],
)
def test_transform_examples(spec, value, expected):
    assert transform(spec)(value) == expected


@pytest.mark.parametrize(
    ("spec", "value", "message"),
    [
        ("int", "abc", "int: value is not a number"),
        ("int", "1_000", "int: value is not a number"),
        ("number", "1_000.5", "number: value is not a number"),
        ("decimal:2", "1_0", "decimal: value is not a number"),
        ("int", "1.5", "int: value is not a whole number"),
        ("int", [1], "int: cannot convert an array to an integer"),
        ("number", "abc", "number: value is not a number"),
        ("number", "nan", "number: value is not a finite number"),
        ("number", True, "number: cannot convert a boolean to a number"),
        ("decimal:2", "x", "decimal: value is not a number"),
        ("decimal:2", "Infinity", "decimal: value is not a finite number"),
        ("decimal:2", {"a": 1}, "decimal: cannot convert an object to a decimal"),
        ("bool", "maybe", "bool: value is not a recognised yes/no value"),
        ("date:%Y", "yesterday", "date: value is not a recognised date"),
        ("date:%Y", 20240101, "date: cannot read a int as a date"),
        ("date:%m/%d/%Y>%Y", "2024-01-01", "date: value does not match '%m/%d/%Y'"),
    ],
)
def test_transform_failures_name_the_transform_not_the_value(spec, value, message):
    with pytest.raises(TransformFailed) as caught:
        transform(spec)(value)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("chain", "message"),
    [
        ("uper", "unknown transform 'uper' (did you mean 'upper'?)"),
        (
            "xyzzy",
            "unknown transform 'xyzzy'; known: bool, concat, date, decimal, default, "
            "int, lookup, lower, map, number, prefix, string, suffix, trim, truncate, upper",
        ),
        ("upper:x", "upper takes no argument"),
        ("prefix", "prefix needs an argument (prefix:...)"),
        ("concat|upper|concat", "concat may appear only once in a chain"),
    ],
)
def test_bad_chains_are_spec_errors(chain, message):
    with pytest.raises(TransformSpecError) as caught:
        parse_chain(chain)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("decimal:x", "decimal needs a whole number, got 'x'"),
        ("truncate:-1", "truncate needs a whole number, got '-1'"),
        (
            "date:YYYY-MM-DD",
            "date format 'YYYY-MM-DD' has no %-directives (write e.g. %Y-%m-%d, or iso)",
        ),
        ("map:A", "map entry 'A' is not code=value"),
        ("map:A=1;A=2", "map lists code 'A' twice"),
        ("lookup:nope", "lookup:nope: no table nope"),
    ],
)
def test_bad_arguments_are_spec_errors(spec, message):
    with pytest.raises(TransformSpecError) as caught:
        transform(spec)
    assert str(caught.value) == message


def test_chain_parsing_strips_blanks_and_keeps_quoted_arguments():
    assert parse_chain(" trim | prefix:' x ' |concat:, ") == [
        TransformCall("trim", None),
        TransformCall("prefix", " x "),
        TransformCall("concat", ","),
    ]
    assert parse_chain("") == []
    assert "concat" in VOCABULARY


def test_lookup_reads_the_named_column(tmp_path: Path):
    path = tmp_path / "status.csv"
    path.write_text("code,erp,label\nN,NEW,New\n1,ONE,One\n", encoding="utf-8")

    def tables(name: str) -> LookupTable:
        return load_table(tmp_path / f"{name}.csv")

    assert transform("lookup:status", tables)("N") == "NEW"
    assert transform("lookup:status.label", tables)("N") == "New"
    assert transform("lookup:status", tables)(1) == "ONE"
    assert transform("lookup:status", tables)("X") is None
    with pytest.raises(TransformSpecError, match="no column 'nope'"):
        transform("lookup:status.nope", tables)


def test_join_skips_null_and_empty_parts():
    assert join_parts(" ")(["Ada", None, "", "Lovelace"]) == "Ada Lovelace"
    assert join_parts("-")([1, True]) == "1-true"
    assert join_parts(" ")([None, ""]) is None


# --- properties -------------------------------------------------------------------------

texts = st.text(max_size=30)


@given(texts)
def test_upper_and_lower_are_idempotent(text):
    upper, lower = transform("upper"), transform("lower")
    assert upper(upper(text)) == upper(text)
    assert lower(lower(text)) == lower(text)


@given(texts)
def test_trim_is_idempotent_and_leaves_no_outer_blanks(text):
    trim = transform("trim")
    once = trim(text)
    assert trim(once) == once
    assert once == once.strip()


moments = st.datetimes(
    min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.none()
)


@given(moments)
def test_date_iso_round_trip(moment):
    as_iso = transform("date:iso")
    assert as_iso(moment.isoformat()) == moment.isoformat()
    assert transform("date:%Y-%m-%dT%H:%M:%S.%f")(moment.isoformat()) == moment.strftime(
        "%Y-%m-%dT%H:%M:%S.%f"
    )


@given(moments.map(lambda m: m.date()))
def test_date_round_trips_between_formats(day):
    to_german = transform("date:%d.%m.%Y")
    back = transform("date:%d.%m.%Y>%Y-%m-%d")
    assert back(to_german(day.isoformat())) == day.isoformat()
    us = transform("date:%m/%d/%Y")(day.isoformat())
    assert transform("date:%m/%d/%Y>iso")(us) == datetime(day.year, day.month, day.day).isoformat()


@given(st.datetimes(timezones=st.just(UTC)), st.integers(min_value=-12, max_value=12))
def test_date_keeps_the_offset_of_aware_times(moment, hours):
    local = moment.astimezone(__import__("datetime").timezone(timedelta(hours=hours)))
    assert transform("date:iso")(local.isoformat()) == local.isoformat()


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=6, min_value=-(10**9), max_value=10**9
    ),
    st.integers(min_value=0, max_value=6),
)
def test_decimal_rounds_half_up(number, places):
    result = transform(f"decimal:{places}")(str(number))
    expected = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    assert Decimal(result) == expected
    assert len(result.partition(".")[2]) == places


@given(st.integers(min_value=-(10**30), max_value=10**30))
def test_int_and_string_round_trip(number):
    assert transform("int")(transform("string")(number)) == number
    assert transform("number")(str(number)) == number


@given(st.booleans())
def test_bool_and_string_round_trip(flag):
    assert transform("bool")(transform("string")(flag)) is flag


@given(
    st.text(
        alphabet=st.characters(blacklist_characters=";=|", blacklist_categories=("Cs",)),
        min_size=1,
        max_size=10,
    ).filter(lambda t: t.strip() == t and t != "*")
)
def test_code_map_maps_known_codes_and_nothing_else(code):
    mapping = transform(f"map:{code}=hit")
    assert mapping(code) == "hit"
    assert mapping(code + "x") is None
