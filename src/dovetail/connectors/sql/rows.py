"""Turning payloads into table rows: choosing the columns and converting values to their types.

A row is a dict in the table's column order. Without a ``columns`` mapping it holds the payload's
top-level fields that are columns of the table; with one, every mapped column, ``None`` where the
expression gives nothing. Values are converted to the Python types the column's driver takes:
ISO strings to ``date``/``datetime``/``time``, numeric strings to ``int``/``Decimal``/``float``,
numbers to text for text columns, objects to JSON text for text columns. A value that cannot be
converted rejects that message only, with a reason naming the column (never the value).

Given a ``bind_dialect``, rows hold what that dialect's driver receives instead (its bind
processors applied: on SQLite dates and times as ISO text, decimals as floats), converted in one
step per value, so that a writer can hand them to the driver as they are.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import Table
from sqlalchemy import types as sqltypes
from sqlalchemy.engine import Dialect

from dovetail.connectors.sql.engine import RowRejected
from dovetail.errors import PermanentError
from dovetail.mapping.jsonata import Expression

Converter = Callable[[Any], Any]
"""Turns one non-null payload value into the column's Python type; raises on failure."""

_TRUE = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "off"})
_LENGTH_ENFORCED = frozenset({"postgresql", "mysql"})
_MAX_PLANS = 256
_Plan = tuple[list[tuple[str, "Converter"]], list[str]]
"""(column, converter) pairs to apply to every value, then text columns to apply to non-``str``."""


class _Unconvertible(Exception):
    """A value does not fit its column's type (the caller names the column)."""


class RowBuilder:
    """Builds the row for one payload and checks the key. Raises ``PermanentError`` per message."""

    def __init__(
        self,
        table: Table,
        *,
        dialect: str,
        mapping: Mapping[str, Expression] | None,
        key: Sequence[str],
        bind_dialect: Dialect | None = None,
    ) -> None:
        self.name = table.name
        self.columns: tuple[str, ...] = tuple(column.name for column in table.columns)
        self._column_set = frozenset(self.columns)
        self._mapping = (
            [(name, mapping[name]) for name in self.columns if name in mapping] if mapping else None
        )
        self._key = tuple(key)
        self._key_getter = operator.itemgetter(*key) if key else None
        self._converters: dict[str, Converter] = {}
        self._type_names: dict[str, str] = {}
        for column in table.columns:
            converter = converter_for(column.type, dialect=dialect)
            if bind_dialect is not None:
                converter = driver_converter(column.type, converter, bind_dialect)
            if converter is not None:
                self._converters[column.name] = converter
                self._type_names[column.name] = type(column.type).__name__.lower()
        self._plans: dict[tuple[str, ...], _Plan] = {}

    def build(self, payload: Any) -> dict[str, Any]:
        """The converted row for ``payload``; raises ``PermanentError`` naming the problem."""
        if self._mapping is not None:
            row = {name: expression.evaluate(payload) for name, expression in self._mapping}
        elif isinstance(payload, dict):
            columns = self._column_set
            if payload.keys() <= columns:
                row = dict(payload)
            else:
                row = {name: value for name, value in payload.items() if name in columns}
            if not row:
                raise PermanentError(f"the payload has no field that is a column of {self.name}")
        else:
            raise PermanentError(
                f"the payload is a {type(payload).__name__}, not an object; map it with `columns`"
            )
        names = tuple(row)
        plan = self._plans.get(names)
        if plan is None:
            plan = self._plan(names)
        typed, texts = plan
        name = ""
        try:
            for name, convert in typed:
                value = row[name]
                if value is not None:
                    row[name] = convert(value)
            for name in texts:
                value = row[name]
                if value is not None and type(value) is not str:
                    row[name] = _to_text(value)
        except (_Unconvertible, ValueError, TypeError, ArithmeticError) as exc:
            raise self._rejection(name, row[name], exc) from None
        for name in self._key:
            if row.get(name) is None:
                raise PermanentError(f"key column {name!r} is missing or null")
        return row

    def key_of(self, row: Mapping[str, Any]) -> Hashable:
        """The upsert key of a built row (the value itself for a one-column key)."""
        if self._key_getter is None:
            raise ValueError("no key configured")
        key: Hashable = self._key_getter(row)
        return key

    def _plan(self, names: tuple[str, ...]) -> _Plan:
        """The converters for a set of present columns, cached for the shapes payloads have:
        (column, converter) pairs, then the text columns that take any ``str`` unchanged."""
        converters = self._converters
        present = [name for name in names if name in converters]
        plan = (
            [(name, converters[name]) for name in present if converters[name] is not _to_text],
            [name for name in present if converters[name] is _to_text],
        )
        if len(self._plans) < _MAX_PLANS:
            self._plans[names] = plan
        return plan

    def _rejection(self, name: str, value: Any, error: Exception) -> RowRejected:
        problem = str(error) if isinstance(error, _Unconvertible) else ""
        if not problem:
            problem = f"cannot convert a {type(value).__name__} to {self._type_names[name]}"
        return RowRejected(f"column {name!r}: {problem}")


def converter_for(column_type: sqltypes.TypeEngine[Any], *, dialect: str) -> Converter | None:
    """The converter for a reflected column type, or ``None`` to pass values through."""
    if isinstance(column_type, sqltypes.Boolean):
        return _to_bool
    if isinstance(column_type, sqltypes.Integer):
        return _to_int
    if isinstance(column_type, sqltypes.Float):
        return _to_float
    if isinstance(column_type, sqltypes.Numeric):
        return _to_decimal if column_type.asdecimal else _to_float
    if isinstance(column_type, sqltypes.DateTime):
        return _to_aware_datetime if column_type.timezone else _to_naive_datetime
    if isinstance(column_type, sqltypes.Date):
        return _to_date
    if isinstance(column_type, sqltypes.Time):
        return _to_time
    if isinstance(column_type, sqltypes.Uuid):
        return _to_uuid if column_type.as_uuid else _to_text
    if isinstance(column_type, sqltypes.String):
        length = column_type.length if dialect in _LENGTH_ENFORCED else None
        return _text_of_length(length) if length else _to_text
    return None


def driver_converter(
    column_type: sqltypes.TypeEngine[Any], convert: Converter | None, dialect: Dialect
) -> Converter | None:
    """``convert`` followed by the dialect's bind processor for ``column_type``, as one step.

    Dates, naive date-times and decimals get a fused converter when it gives exactly what the
    processor gives (checked on sample values), so no intermediate object is formatted twice.
    """
    process = column_type.dialect_impl(dialect).bind_processor(dialect)
    if process is None:
        return convert
    if convert is None:
        return process
    fused = _FUSED.get(convert)
    if fused is not None:
        fast, samples = fused
        if all(fast(value) == process(convert(value)) for value in samples):
            return fast
    return lambda value: process(convert(value))


def _to_int(value: Any) -> int:
    if type(value) is int:
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            value = Decimal(text)
    if isinstance(value, float | Decimal) and value == int(value):
        return int(value)
    raise _Unconvertible


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise _Unconvertible
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            raise _Unconvertible from None
    raise _Unconvertible


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise _Unconvertible
    if isinstance(value, int | float | Decimal):
        return float(value)
    if isinstance(value, str):
        return float(value.strip())
    raise _Unconvertible


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise _Unconvertible


def _to_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text).date()
    raise _Unconvertible


def _to_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        return datetime.fromisoformat(value.strip())
    raise _Unconvertible


def _to_aware_datetime(value: Any) -> datetime:
    result = _to_datetime(value)
    return result if result.tzinfo is not None else result.replace(tzinfo=UTC)


def _to_naive_datetime(value: Any) -> datetime:
    result = _to_datetime(value)
    return result if result.tzinfo is None else result.astimezone(UTC).replace(tzinfo=None)


def _to_time(value: Any) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, str):
        return time.fromisoformat(value.strip())
    raise _Unconvertible


def _to_uuid(value: Any) -> UUID:
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        return UUID(value.strip())
    raise _Unconvertible


def _to_text(value: Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal | UUID):
        return str(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    raise _Unconvertible


def _text_of_length(length: int) -> Converter:
    def convert(value: Any) -> str:
        text = value if type(value) is str else _to_text(value)
        if len(text) > length:
            raise _Unconvertible(f"value longer than {length} characters")
        return text

    return convert


def _date_text(value: Any) -> str:
    if type(value) is str and len(value) == 10 and value[4] == value[7] == "-":
        date.fromisoformat(value)  # validates; the text is already in its stored form
        return value
    return _to_date(value).isoformat()


def _naive_datetime_text(value: Any) -> str:
    if type(value) is str:
        text = value.strip()
        result = datetime.fromisoformat(text)
        if (
            text[19:] in _UTC_SUFFIXES
            and len(text) >= 19
            and text[10] in "T "
            and text[4] == text[7] == "-"
            and text[13] == text[16] == ":"
            and text[11:13] < "24"
        ):  # whole seconds in UTC, as ISO text: the stored form is a respelling
            return f"{text[:10]} {text[11:19]}.000000"
        if result.tzinfo is not None:
            result = result.astimezone(UTC)
    else:
        result = _to_naive_datetime(value)
    # "YYYY-MM-DD HH:MM:SS[.ffffff][+00:00]" -> always with microseconds, never an offset
    text = result.isoformat(" ")
    return text[:26] if result.microsecond else text[:19] + ".000000"


def _decimal_float(value: Any) -> float:
    if type(value) is str:
        try:
            return float(value)  # correctly rounded, as float(Decimal(value)) is
        except ValueError:
            pass
    return float(_to_decimal(value))


_UTC_SUFFIXES = frozenset({"", "Z", "+00:00"})

_FUSED: dict[Converter, tuple[Converter, tuple[Any, ...]]] = {
    _to_date: (_date_text, ("2024-02-29", " 0999-01-05 ", "2024-03-01T08:00:00", date(7, 1, 2))),
    _to_naive_datetime: (
        _naive_datetime_text,
        (
            "2024-02-29T23:30:00+02:00",
            "2024-02-29 22:00:00.5",
            "0999-01-05T00:00:00.000001Z",
            datetime(7, 1, 2, 3, 4, 5, 6),
            date(2024, 1, 1),
        ),
    ),
    _to_decimal: (_decimal_float, ("19.90", " -0.1 ", 3, 0.1, Decimal("1e-7"), "1234567890.12")),
}
"""Converters that have a one-step driver form, with the samples that must agree."""
