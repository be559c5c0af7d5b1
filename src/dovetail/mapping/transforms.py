"""The transform vocabulary of mapping sheets.

A sheet's ``transform`` cell is a ``|``-separated chain applied left to right, for example
``trim|upper`` or ``default:0|int``. Each step is ``name`` or ``name:argument``; an argument may
be quoted (``prefix:'Mr. '``) to keep surrounding blanks, since blanks around ``|`` are ignored.

Every transform passes a missing value (``None``) through unchanged, except ``default``, and
the converters (``int``, ``number``, ``decimal``, ``bool``, ``date``) also treat an empty string
as missing. Text transforms (``upper``, ``lower``, ``trim``, ``prefix``, ``suffix``,
``truncate``) turn other values into text first, as ``string`` does. Failures raise
``TransformFailed`` with a message that never contains the value itself (values may be
personal data; reasons are shown in dead-letter views).

``concat`` is structural: the sheet compiler reads several sources for it (see ``sheet.py``);
transforms before ``concat`` apply to each part, transforms after it to the joined text.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal

import orjson

from dovetail.mapping.dates import check_date_format, date_formatter, parse_date
from dovetail.mapping.lookup_table import LookupTable

Transform = Callable[[Any], Any]
"""One transform step: a value in, a value out."""

TableResolver = Callable[[str], LookupTable]
"""Finds the code table a ``lookup:TABLE`` step names; raises ``ValueError`` when it cannot."""


class TransformSpecError(ValueError):
    """A transform cell names an unknown transform or gives a bad argument."""


class TransformFailed(ValueError):
    """A transform cannot convert this value; the message names the transform, not the value."""


@dataclass(frozen=True, slots=True)
class TransformCall:
    """One parsed step of a chain: ``name`` and its argument (``None`` when absent)."""

    name: str
    arg: str | None


def to_text(value: Any) -> str | None:
    """The text form of a value: JSON spellings for ``true``/``false``, JSON for containers."""
    if value is None or isinstance(value, str):
        return value
    kind = type(value)
    if kind is int or kind is float:
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        raise TransformFailed(f"string: cannot write {_kind(value)} as text") from None


_CONTAINERS = (list, dict)


def is_empty(value: Any) -> bool:
    """Whether a value counts as missing: ``None``, ``""``, an empty list or object."""
    return value is None or value == "" or (isinstance(value, _CONTAINERS) and not value)


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else _text_or_none(value, str.upper)


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else _text_or_none(value, str.lower)


def _trim(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else _text_or_none(value, str.strip)


def _text_or_none(value: Any, func: Callable[[str], str]) -> str | None:
    text = to_text(value)
    return None if text is None else func(text)


def _to_int(value: Any) -> int | None:
    if value is None or type(value) is int:
        return value
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if "_" in text:  # Python reads 1_000 as a number; data should not
            raise TransformFailed("int: value is not a number")
        try:
            return int(text)
        except ValueError:
            value = _parse_decimal(text, "int")
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float | Decimal):
        if not math.isfinite(value) or value != int(value):
            raise TransformFailed("int: value is not a whole number")
        return int(value)
    raise TransformFailed(f"int: cannot convert {_kind(value)} to an integer")


def _to_number(value: Any) -> int | float | None:
    if value is None or isinstance(value, bool):
        if value is None:
            return None
        raise TransformFailed("number: cannot convert a boolean to a number")
    if isinstance(value, int | float):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if "_" in text:
            raise TransformFailed("number: value is not a number")
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            raise TransformFailed("number: value is not a number") from None
        if math.isfinite(number):
            return number
        raise TransformFailed("number: value is not a finite number")
    raise TransformFailed(f"number: cannot convert {_kind(value)} to a number")


def _parse_decimal(text: str, name: str) -> Decimal:
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise TransformFailed(f"{name}: value is not a number") from None
    if not number.is_finite():
        raise TransformFailed(f"{name}: value is not a finite number")
    return number


def _decimal(places: int) -> Transform:
    quantum = Decimal(1).scaleb(-places)
    plain = places <= 6  # str() of a quantized Decimal has no exponent then; format() is slower

    def to_decimal(value: Any) -> str | None:
        kind = type(value)
        if kind is str:
            try:
                if "_" in value:
                    raise InvalidOperation
                number = Decimal(value)
            except InvalidOperation:
                if not value.strip():
                    return None
                raise TransformFailed("decimal: value is not a number") from None
        elif value is None:
            return None
        elif kind is int or kind is Decimal:
            number = Decimal(value)
        elif kind is float:
            number = Decimal(repr(value))
        else:
            raise TransformFailed(f"decimal: cannot convert {_kind(value)} to a decimal")
        if not number.is_finite():
            raise TransformFailed("decimal: value is not a finite number")
        try:
            rounded = number.quantize(quantum, rounding=ROUND_HALF_UP)
        except InvalidOperation:
            raise TransformFailed("decimal: value has too many digits") from None
        if rounded.is_zero():
            rounded = abs(rounded)
        return str(rounded) if plain else format(rounded, "f")

    return to_decimal


_TRUE = frozenset({"true", "yes", "y", "1", "on", "t"})
_FALSE = frozenset({"false", "no", "n", "0", "off", "f"})


def _to_bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if not text:
            return None
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise TransformFailed("bool: value is not a recognised yes/no value")


def _date(arg: str) -> Transform:
    in_format, _, out_format = arg.partition(">") if ">" in arg else ("", "", arg)
    try:
        if in_format:
            check_date_format(in_format, parse=True)
        check_date_format(out_format, parse=False)
    except ValueError as exc:
        raise TransformSpecError(str(exc)) from None
    write = date_formatter(out_format)

    def convert(value: Any) -> str | None:
        if value is None or value == "":
            return None
        if isinstance(value, datetime | date):
            return write(value)
        if not isinstance(value, str):
            raise TransformFailed(f"date: cannot read {_kind(value)} as a date")
        if in_format:
            try:
                return write(datetime.strptime(value.strip(), in_format))
            except ValueError:
                raise TransformFailed(f"date: value does not match {in_format!r}") from None
        try:
            moment = parse_date(value)
        except ValueError as exc:
            raise TransformFailed(str(exc)) from None
        return write(moment)

    return convert


def _default(arg: str) -> Transform:
    return lambda value: arg if is_empty(value) else value


def _code_map(arg: str) -> Transform:
    codes: dict[str, str] = {}
    for pair in arg.split(";"):
        code, sep, mapped = pair.partition("=")
        code = code.strip()
        if not sep or not code:
            raise TransformSpecError(f"map entry {pair.strip()!r} is not code=value")
        if code in codes:
            raise TransformSpecError(f"map lists code {code!r} twice")
        codes[code] = mapped.strip()
    fallback = codes.pop("*", None)

    def map_code(value: Any) -> Any:
        if value is None:
            return None
        return codes.get(value if isinstance(value, str) else str(to_text(value)), fallback)

    return map_code


def _lookup(arg: str, tables: TableResolver) -> Transform:
    table_name, _, column = arg.partition(".")
    try:
        table = tables(table_name)
        values = table.values(table.value_column(column or None))
    except ValueError as exc:
        raise TransformSpecError(f"lookup:{arg}: {exc}") from None

    def lookup(value: Any) -> Any:
        if value is None:
            return None
        return values.get(value if isinstance(value, str) else str(to_text(value)))

    return lookup


def _count(arg: str, name: str) -> int:
    if not arg.isdigit():
        raise TransformSpecError(f"{name} needs a whole number, got {arg!r}")
    return int(arg)


def _truncate(arg: str) -> Transform:
    size = _count(arg, "truncate")
    return lambda value: None if value is None else str(to_text(value))[:size]


def _prefix(arg: str) -> Transform:
    return lambda value: None if value is None else arg + str(to_text(value))


def _suffix(arg: str) -> Transform:
    return lambda value: None if value is None else str(to_text(value)) + arg


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    return names.get(type(value), f"a {type(value).__name__}")


ArgRule = Literal["none", "optional", "required"]

_PLAIN: dict[str, Transform] = {
    "upper": _upper,
    "lower": _lower,
    "trim": _trim,
    "int": _to_int,
    "number": _to_number,
    "bool": _to_bool,
    "string": to_text,
}
_WITH_ARG: dict[str, Callable[[str], Transform]] = {
    "decimal": lambda arg: _decimal(_count(arg, "decimal")),
    "date": _date,
    "default": _default,
    "map": _code_map,
    "prefix": _prefix,
    "suffix": _suffix,
    "truncate": _truncate,
}
VOCABULARY: tuple[str, ...] = tuple(sorted([*_PLAIN, *_WITH_ARG, "lookup", "concat"]))
"""Every transform name a sheet may use."""

FAST_PATHS: dict[str, str] = {
    "upper": "{v}.upper() if type({v}) is str else {f}({v})",
    "lower": "{v}.lower() if type({v}) is str else {f}({v})",
    "trim": "{v}.strip() if type({v}) is str else {f}({v})",
    "string": "{v} if type({v}) is str else {f}({v})",
    "int": "{v} if type({v}) is int else {f}({v})",
    "default": "{v} if type({v}) is str and {v} else {f}({v})",
}
"""Per transform name, a Python expression equal to ``{f}({v})`` (the step ``{f}`` applied to
the local ``{v}``) that skips the call in the common case, text in and text out. The sheet
compiler inlines it into the function it generates."""

CONCAT = "concat"
DEFAULT_CONCAT_SEPARATOR = " "


def parse_chain(text: str) -> list[TransformCall]:
    """Split a transform cell into steps; raises ``TransformSpecError`` for unknown names.

    An empty cell is an empty chain.
    """
    calls: list[TransformCall] = []
    for part in text.split("|") if text.strip() else []:
        name, sep, arg = part.strip().partition(":")
        name = name.strip()
        if name not in VOCABULARY:
            close = difflib.get_close_matches(name, VOCABULARY, n=1, cutoff=0.6)
            hint = (
                f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(VOCABULARY)}"
            )
            raise TransformSpecError(f"unknown transform {name!r}{hint}")
        value = _unquote(arg) if sep else None
        if name in _PLAIN and value is not None:
            raise TransformSpecError(f"{name} takes no argument")
        if value is None and name in (*_WITH_ARG, "lookup"):
            raise TransformSpecError(f"{name} needs an argument ({name}:...)")
        calls.append(TransformCall(name, value))
    if sum(call.name == CONCAT for call in calls) > 1:
        raise TransformSpecError("concat may appear only once in a chain")
    return calls


def _unquote(arg: str) -> str:
    if len(arg) >= 2 and arg[0] == arg[-1] and arg[0] in "'\"":
        return arg[1:-1]
    return arg


def build_transform(call: TransformCall, tables: TableResolver) -> Transform:
    """The function for one step (not ``concat``).

    Raises ``TransformSpecError`` for a bad argument (a missing table, a bad date format).
    """
    if call.name in _PLAIN:
        return _PLAIN[call.name]
    if call.name == "lookup":
        return _lookup(str(call.arg), tables)
    if call.name == CONCAT:
        raise TransformSpecError("concat is applied by the sheet compiler, not as a function")
    return _WITH_ARG[call.name](str(call.arg))


def compose(steps: list[Transform]) -> Transform | None:
    """One function applying ``steps`` left to right; ``None`` for an empty chain."""
    if not steps:
        return None
    if len(steps) == 1:
        return steps[0]
    if len(steps) == 2:
        first, second = steps
        return lambda value: second(first(value))
    chain = tuple(steps)

    def run(value: Any) -> Any:
        for step in chain:
            value = step(value)
        return value

    return run


def join_parts(separator: str) -> Transform:
    """The ``concat`` step: join the parts that are not null or empty text; none gives ``None``."""

    def join(parts: Any) -> str | None:
        texts = [
            p if type(p) is str else str(to_text(p)) for p in parts if p is not None and p != ""
        ]
        return separator.join(texts) if texts else None

    return join
