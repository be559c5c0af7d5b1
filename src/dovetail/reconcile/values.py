"""Values as compared: canonical text, normalisation rules, keys and the staged row encoding.

Both sides are reduced to the same vocabulary before comparing: numbers, booleans and text
become canonical strings, then each field's ``normalize`` list and (source side only) its
``map`` apply. A number and a numeric string compare by value (``12.5`` equals ``"12.50"``);
two strings compare as text unless the field has a ``tolerance`` or the ``number``
normalisation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Context, Decimal, InvalidOperation
from typing import Any

import orjson

from dovetail.reconcile.config import FieldRule, ReconcileConfig

_NUMBER = re.compile(r"^[+-]?(\d{1,400}\.?\d{0,400}|\.\d{1,400})([eE][+-]?\d{1,3})?$")
_SPACES = re.compile(r"\s+")
_EXACT = Context(prec=1000)
"""Arithmetic wide enough that normalising and subtracting never rounds a parsed number."""


def to_decimal(value: Any) -> Decimal | None:
    """``value`` as a Decimal when it is a number or a numeric string, else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if value == value and abs(value) != float("inf") else None
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.match(text):
            try:
                return Decimal(text)
            except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
                return None
    return None


def number_text(number: Decimal) -> str:
    """Canonical text of a number: no exponent, no trailing zeros (``12.50`` -> ``12.5``)."""
    if number == 0:
        return "0"
    return format(number.normalize(_EXACT), "f")


def canonical(value: Any) -> str | None:
    """The canonical text of a value read from either side (None stays None)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        number = to_decimal(value)
        return number_text(number) if number is not None else str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode()


def _no_leading_zeros(text: str) -> str:
    return (text.lstrip("0") or "0") if text.isdigit() else text


def _number(text: str) -> str:
    number = to_decimal(text)
    return number_text(number) if number is not None else text


_NORMALIZERS: dict[str, Callable[[str], str | None]] = {
    "strip": str.strip,
    "lower": str.lower,
    "upper": str.upper,
    "collapse_whitespace": lambda text: _SPACES.sub(" ", text).strip(),
    "blank_as_null": lambda text: text if text.strip() else None,
    "number": _number,
    "no_leading_zeros": _no_leading_zeros,
}


class FieldComparer:
    """Applies one field's rule to a source and a target value and says whether they agree."""

    __slots__ = ("_blank_is_null", "_map", "_normalizers", "_tolerance")

    def __init__(self, rule: FieldRule, *, blank_is_null: bool) -> None:
        self._normalizers = [_NORMALIZERS[name] for name in rule.normalize]
        self._map = {key: canonical(value) for key, value in rule.map.items()}
        self._tolerance = Decimal(repr(rule.tolerance)) if rule.tolerance is not None else None
        self._blank_is_null = blank_is_null

    def prepare(self, value: Any, *, source: bool) -> str | None:
        """The value as compared: canonical, normalised, mapped (source side only)."""
        text = canonical(value)
        for normalize in self._normalizers:
            if text is None:
                break
            text = normalize(text)
        if source and self._map and text is not None and text in self._map:
            text = self._map[text]
        if self._blank_is_null and text == "":
            return None
        return text

    def equal(self, source: Any, target: Any) -> bool:
        """True when the source and target values agree under this rule."""
        left = self.prepare(source, source=True)
        right = self.prepare(target, source=False)
        if left is None or right is None:
            return left is right
        if left == right:
            return True
        numeric = self._tolerance is not None or _is_number(source) or _is_number(target)
        if numeric:
            a, b = to_decimal(left), to_decimal(right)
            if a is not None and b is not None:
                return _EXACT.abs(_EXACT.subtract(a, b)) <= (self._tolerance or 0)
        return left == right


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


class RowEncoder:
    """Turns one side's records into staged ``(key, fields)`` pairs of bytes.

    The key is the JSON array of the key fields' prepared values, so both sides' keys sort
    the same way byte by byte; the fields are the record's compared fields as JSON (raw
    values, renamed to source names), so reports can show what each side holds.
    """

    def __init__(self, config: ReconcileConfig, *, source: bool) -> None:
        self._source = source
        self._key = list(config.key)
        self._key_comparers = [
            FieldComparer(config.rule(name), blank_is_null=False) for name in config.key
        ]
        self._rename: dict[str, str] = {}
        if not source:
            self._rename = {
                rule.target_field: name
                for name, rule in config.fields.items()
                if rule.target_field is not None and rule.target_field != name
            }
        self._excluded = {*config.key, *config.ignore}
        self._listed: list[str] | None = None
        if config.compare == "listed":
            self._listed = [name for name in config.fields if name not in self._excluded]
        plain = len(self._key) == 1 and self._key[0] not in config.fields
        self._plain_key = self._key[0] if plain else None
        """A single key field without rules: its canonical text is the key (fast path)."""

    def encode(self, record: dict[str, Any]) -> tuple[bytes, bytes]:
        """The staged key and fields of one record."""
        if self._rename:
            record = {self._rename.get(name, name): value for name, value in record.items()}
        if self._plain_key is not None:
            value = record.get(self._plain_key)
            key = [value if value is None or type(value) is str else canonical(value)]
        else:
            key = [
                comparer.prepare(record.get(name), source=self._source)
                for name, comparer in zip(self._key, self._key_comparers, strict=True)
            ]
        excluded = self._excluded
        if self._listed is not None:
            fields = {name: record.get(name) for name in self._listed}
        else:
            fields = {name: v for name, v in record.items() if name not in excluded}
        return (
            orjson.dumps(key),
            orjson.dumps(fields, default=_json_default, option=orjson.OPT_NON_STR_KEYS),
        )


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if value == value.to_integral_value() and abs(value) < 2**63:
            return int(value)
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def display_key(raw: bytes, key: list[str]) -> Any:
    """A staged key as shown in reports: the value, or a mapping for composite keys."""
    values = orjson.loads(raw)
    return values[0] if len(key) == 1 else dict(zip(key, values, strict=False))
