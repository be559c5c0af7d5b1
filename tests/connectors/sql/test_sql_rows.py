"""Payloads become typed rows: column selection, mapping and value conversion."""

from __future__ import annotations

import datetime as dt
import sys
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    Uuid,
)

from dovetail.connectors.sql.rows import RowBuilder
from dovetail.errors import PermanentError
from dovetail.mapping.jsonata import compile_expression

TABLE = Table(
    "orders",
    MetaData(),
    Column("order_id", Integer, primary_key=True),
    Column("email", Text),
    Column("country", String(2)),
    Column("total", Numeric(10, 2)),
    Column("weight", Float),
    Column("paid", Boolean),
    Column("ordered_on", Date),
    Column("created_at", DateTime(timezone=True)),
    Column("local_time", DateTime()),
    Column("ref", Uuid),
    Column("attributes", JSON),
)


def builder(dialect: str = "postgresql", **mapping: str) -> RowBuilder:
    compiled = {name: compile_expression(source) for name, source in mapping.items()}
    return RowBuilder(TABLE, dialect=dialect, mapping=compiled or None, key=("order_id",))


def test_row_keeps_only_the_fields_that_are_table_columns() -> None:
    row = builder().build({"email": "a@x", "extra": 1, "order_id": 5})

    assert row == {"order_id": 5, "email": "a@x"}


@pytest.mark.parametrize(
    ("column", "given_value", "expected"),
    [
        ("order_id", "12", 12),
        ("order_id", " 12 ", 12),
        ("order_id", 12.0, 12),
        ("order_id", "1e3", 1000),
        ("order_id", True, 1),
        ("email", 12, "12"),
        ("email", False, "false"),
        ("email", {"a": [1]}, '{"a":[1]}'),
        ("country", "NL", "NL"),
        ("total", "19.90", Decimal("19.90")),
        ("total", 0.1, Decimal("0.1")),
        ("total", 3, Decimal(3)),
        ("weight", "2.5", 2.5),
        ("paid", "Yes", True),
        ("paid", "0", False),
        ("paid", 1, True),
        ("ordered_on", "2024-02-29", dt.date(2024, 2, 29)),
        ("ordered_on", "2024-02-29T22:00:00Z", dt.date(2024, 2, 29)),
        ("created_at", "2024-02-29T22:00:00Z", dt.datetime(2024, 2, 29, 22, tzinfo=dt.UTC)),
        ("created_at", "2024-02-29 22:00:00", dt.datetime(2024, 2, 29, 22, tzinfo=dt.UTC)),
        ("local_time", "2024-02-29T22:00:00+01:00", dt.datetime(2024, 2, 29, 21)),
        (
            "ref",
            "12345678-1234-5678-1234-567812345678",
            UUID("12345678-1234-5678-1234-567812345678"),
        ),
        ("attributes", {"a": 1}, {"a": 1}),
    ],
)
def test_values_are_converted_to_their_column_type(
    column: str, given_value: Any, expected: Any
) -> None:
    row = builder().build({"order_id": 1, column: given_value})

    assert row[column] == expected
    assert type(row[column]) is type(expected)


@pytest.mark.parametrize(
    ("column", "bad_value"),
    [
        ("order_id", "1.5"),
        ("order_id", "twelve"),
        ("order_id", [1]),
        ("country", "NLD"),
        ("total", "12,50"),
        ("total", True),
        ("paid", "maybe"),
        ("paid", 2),
        ("ordered_on", "29/02/2024"),
        ("created_at", 1709244000),
        ("ref", "not-a-uuid"),
    ],
)
def test_unconvertible_values_name_the_column_but_not_the_value(
    column: str, bad_value: Any
) -> None:
    with pytest.raises(PermanentError) as failure:
        builder().build(
            {"order_id": 7, column: bad_value} if column != "order_id" else {column: bad_value}
        )

    assert repr(column) in failure.value.reason
    assert str(bad_value) not in failure.value.reason


def test_sqlite_does_not_enforce_text_lengths() -> None:
    assert builder("sqlite").build({"order_id": 1, "country": "NLD"})["country"] == "NLD"


def test_mapping_gives_every_mapped_column_and_none_for_missing_values() -> None:
    row = builder(order_id="id", email="customer.email", total="$sum(lines.price)").build(
        {"id": "3", "lines": [{"price": 1.5}, {"price": 2}]}
    )

    assert row == {"order_id": 3, "email": None, "total": Decimal("3.5")}


def test_missing_key_is_a_permanent_failure() -> None:
    with pytest.raises(PermanentError, match="key column 'order_id'"):
        builder().build({"email": "a@x"})


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_integers_survive_any_textual_form(number: int) -> None:
    for form in (
        number,
        str(number),
        f" {number} ",
        float(number) if abs(number) < 2**53 else number,
    ):
        assert builder().build({"order_id": form})["order_id"] == number


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=2, max_value=10**8, min_value=-(10**8)
    )
)
def test_decimals_keep_their_exact_value(amount: Decimal) -> None:
    assert builder().build({"order_id": 1, "total": str(amount)})["total"] == amount


def count_python_calls(function: Any, argument: Any) -> int:
    """How many Python-level functions ``function(argument)`` calls (builtins not counted)."""
    calls = 0

    def profile(frame: Any, event: str, _arg: object) -> None:
        nonlocal calls
        if event == "call":
            calls += 1

    sys.setprofile(profile)
    try:
        function(argument)
    finally:
        sys.setprofile(None)
    return calls - 1  # the function itself


def test_values_that_already_have_their_column_type_cost_no_converter_call() -> None:
    rows = builder()
    payload = {"order_id": 5, "email": "a@x", "country": "NL", "weight": 2.5, "paid": True}
    assert rows.build(payload) == payload

    # one call: the straight-line function compiled for this set of columns
    assert count_python_calls(rows.build, payload) == 1


def test_each_set_of_columns_gets_its_own_row_function_in_table_order() -> None:
    rows = builder()

    first = rows.build({"email": "a@x", "order_id": "1"})
    second = rows.build({"order_id": 2, "paid": "no", "other": 1})

    assert list(first) == ["order_id", "email"]
    assert list(second) == ["order_id", "paid"]
    assert second == {"order_id": 2, "paid": False}
