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

from dovetail.connectors.sql.row_codegen import (
    ColumnPlan,
    Converter,
    TextOfLength,
    Unconvertible,
    compile_mapped_row,
    compile_row,
)
from dovetail.errors import PermanentError
from dovetail.mapping.jsonata import Expression

_TRUE = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "off"})
_LENGTH_ENFORCED = frozenset({"postgresql", "mysql"})
_MAX_SHAPES = 256
_MAX_KEY_ORDERS = 4096


class RowBuilder:
    """Builds the row for one payload and checks the key. Raises ``PermanentError`` per message.

    Each set of columns a payload fills is compiled, on first sight, into one straight-line
    function (``rows_codegen``): the values are passed to it positionally, each column's
    converter is bound in it (with an inline check that skips the call when the value already
    has the column's type) and the row is built in table order in one step.
    """

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
        self._key = tuple(key)
        self._key_getter = operator.itemgetter(*key) if key else None
        self._plans: dict[str, ColumnPlan] = {}
        for column in table.columns:
            converter = converter_for(column.type, dialect=dialect)
            if bind_dialect is not None:
                converter = driver_converter(column.type, converter, bind_dialect)
            self._plans[column.name] = ColumnPlan(
                column.name,
                converter,
                type(column.type).__name__.lower(),
                _SKIP.get(converter) if converter is not None else None,
            )
        self._by_shape: dict[tuple[str, ...], Callable[..., dict[str, Any]]] = {}
        self._by_keys: dict[tuple[str, ...], tuple[Callable[..., Any], Callable[..., Any]]] = {}
        self._mapped: Callable[[Any], dict[str, Any]] | None = None
        if mapping:
            mapped = [name for name in self.columns if name in mapping]
            self._mapped = compile_mapped_row(
                self.name,
                [self._plans[name] for name in mapped],
                [mapping[name].evaluate for name in mapped],
                self._key,
            )

    def build(self, payload: Any) -> dict[str, Any]:
        """The converted row for ``payload``; raises ``PermanentError`` naming the problem."""
        if self._mapped is not None:
            return self._mapped(payload)
        if type(payload) is not dict:
            if not isinstance(payload, dict):
                raise PermanentError(
                    f"the payload is a {type(payload).__name__}, not an object;"
                    " map it with `columns`"
                )
            payload = dict(payload)
        found = self._by_keys.get(tuple(payload))
        if found is None:
            found = self._for_keys(tuple(payload))
        pick, row = found
        return row(*pick(payload))  # type: ignore[no-any-return]

    def key_of(self, row: Mapping[str, Any]) -> Hashable:
        """The upsert key of a built row (the value itself for a one-column key)."""
        if self._key_getter is None:
            raise ValueError("no key configured")
        key: Hashable = self._key_getter(row)
        return key

    def _for_keys(
        self, keys: tuple[str, ...]
    ) -> tuple[Callable[..., Any], Callable[..., dict[str, Any]]]:
        """The picker of a payload's column values (in table order) and the row function of
        that set of columns, for payloads with these keys in this order."""
        present = set(keys)
        shape = tuple(name for name in self.columns if name in present)
        if not shape:
            raise PermanentError(f"the payload has no field that is a column of {self.name}")
        row = self._by_shape.get(shape)
        if row is None:
            row = compile_row(self.name, [self._plans[name] for name in shape], self._key)
            if len(self._by_shape) < _MAX_SHAPES:
                self._by_shape[shape] = row
        getter = operator.itemgetter(*shape)
        pick: Callable[..., Any] = getter if len(shape) > 1 else lambda p: (getter(p),)
        if len(self._by_keys) < _MAX_KEY_ORDERS and shape in self._by_shape:
            self._by_keys[keys] = (pick, row)
        return pick, row


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
    raise Unconvertible


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise Unconvertible
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
            raise Unconvertible from None
    raise Unconvertible


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise Unconvertible
    if isinstance(value, int | float | Decimal):
        return float(value)
    if isinstance(value, str):
        return float(value.strip())
    raise Unconvertible


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
    raise Unconvertible


def _to_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text).date()
    raise Unconvertible


def _to_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        return datetime.fromisoformat(value.strip())
    raise Unconvertible


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
    raise Unconvertible


def _to_uuid(value: Any) -> UUID:
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        return UUID(value.strip())
    raise Unconvertible


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
    raise Unconvertible


def _text_of_length(length: int) -> Converter:
    return TextOfLength(length, _to_text)


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

_SKIP: dict[Converter, type] = {
    _to_int: int,
    _to_text: str,
    _to_float: float,
    _to_bool: bool,
    _to_decimal: Decimal,
    _to_date: date,
    _to_time: time,
    _to_uuid: UUID,
}
"""Converters that return a value of this exact type unchanged: the row skips their call."""
