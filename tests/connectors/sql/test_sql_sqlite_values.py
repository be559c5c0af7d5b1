"""Rows for SQLite hold driver values: exactly what SQLAlchemy's SQLite dialect would bind."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Boolean, Column, Date, DateTime, MetaData, Numeric, String, Table, Uuid
from sqlalchemy import types as sqltypes
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

from dovetail.connectors.sql.rows import RowBuilder, converter_for, driver_converter
from dovetail.errors import PermanentError

DIALECT = SQLiteDialect_pysqlite()
TYPES: dict[str, sqltypes.TypeEngine[Any]] = {
    "date": Date(),
    "datetime": DateTime(),
    "aware": DateTime(timezone=True),
    "numeric": Numeric(12, 2),
}


def both(column_type: sqltypes.TypeEngine[Any], value: Any) -> tuple[Any, Any]:
    """(one-step driver value, converter then SQLAlchemy's bind processor), or the exception
    type each raised."""
    convert = converter_for(column_type, dialect="sqlite")
    assert convert is not None
    process = column_type.dialect_impl(DIALECT).bind_processor(DIALECT)
    assert process is not None
    fused = driver_converter(column_type, convert, DIALECT)
    assert fused is not None
    outcomes = []
    for step in (fused, lambda v: process(convert(v))):
        try:
            outcomes.append(step(value))
        except Exception as exc:
            outcomes.append(type(exc).__name__)
    return outcomes[0], outcomes[1]


datetimes = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30))
offsets = st.sampled_from(["", "Z", "+00:00", "-00:00", "+02:00", "-05:30", "+14:00"])


@given(datetimes, offsets, st.sampled_from(["T", " "]), st.sampled_from(["seconds", "auto"]))
def test_datetime_text_matches_the_dialect(
    moment: dt.datetime, offset: str, separator: str, timespec: str
) -> None:
    text = moment.isoformat(separator, timespec) + offset
    for column in ("datetime", "aware"):
        fused, reference = both(TYPES[column], text)
        assert fused == reference
    fused, reference = both(TYPES["datetime"], f"  {text} ")
    assert fused == reference


@given(datetimes)
def test_datetime_and_date_objects_match_the_dialect(moment: dt.datetime) -> None:
    for value in (moment, moment.replace(tzinfo=dt.UTC), moment.date()):
        for column in ("datetime", "aware", "date"):
            fused, reference = both(TYPES[column], value)
            assert fused == reference


@given(st.dates(min_value=dt.date(1, 1, 1)), st.sampled_from(["", "T08:30:00", "T23:59:59Z"]))
def test_date_text_matches_the_dialect(day: dt.date, time_part: str) -> None:
    for text in (day.isoformat() + time_part, day.strftime("%Y%m%d"), f" {day.isoformat()} "):
        fused, reference = both(TYPES["date"], text)
        assert fused == reference


@given(
    st.one_of(
        st.decimals(allow_nan=False, places=4, min_value=-(10**12), max_value=10**12),
        st.floats(allow_nan=False),
        st.integers(min_value=-(10**30), max_value=10**30),
    )
)
def test_numeric_values_match_the_dialect(number: Any) -> None:
    for value in (number, str(number), f" {number} "):
        fused, reference = both(TYPES["numeric"], value)
        assert fused == reference or (fused != fused and reference != reference)  # nan


@pytest.mark.parametrize(
    "value",
    ["2024-02-30", "2024-02-29T24:00:00", "2024-W05-3", "20240229", "31/12/2024", "x", 5, True],
)
def test_unusual_and_invalid_text_is_handled_as_the_dialect_does(value: Any) -> None:
    for column in ("date", "datetime"):
        fused, reference = both(TYPES[column], value)
        assert fused == reference


@pytest.mark.parametrize("value", ["12,50", "abc", "", "NaN", "Infinity", "-inf", "1_000", True])
def test_unusual_and_invalid_numbers_are_handled_as_the_dialect_does(value: Any) -> None:
    fused, reference = both(TYPES["numeric"], value)
    assert fused == reference or (fused != fused and reference != reference)


def test_rows_hold_driver_values_and_bad_values_name_their_column() -> None:
    table = Table(
        "orders",
        MetaData(),
        Column("order_id", sqltypes.Integer, primary_key=True),
        Column("ordered_on", Date),
        Column("created_at", DateTime),
        Column("total", Numeric(10, 2)),
        Column("paid", Boolean),
        Column("ref", Uuid),
        Column("note", String(3)),
    )
    builder = RowBuilder(
        table, dialect="sqlite", mapping=None, key=("order_id",), bind_dialect=DIALECT
    )

    row = builder.build(
        {
            "order_id": "7",
            "ordered_on": "2024-02-29",
            "created_at": "2024-02-29T23:30:00+02:00",
            "total": "19.90",
            "paid": "yes",
            "ref": "12345678-1234-5678-1234-567812345678",
            "note": 12345,
        }
    )

    assert row == {
        "order_id": 7,
        "ordered_on": "2024-02-29",
        "created_at": "2024-02-29 21:30:00.000000",
        "total": 19.9,
        "paid": 1,
        "ref": "12345678123456781234567812345678",
        "note": "12345",
    }
    with pytest.raises(PermanentError, match="'created_at'") as failure:
        builder.build({"order_id": 1, "created_at": "29.02.2024 10:00"})
    assert "29.02" not in str(failure.value)
