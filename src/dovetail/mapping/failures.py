"""Reasons for failed evaluations that name the field and the kind of error, never a value.

An exception raised while an expression runs quotes what it was given (``Invalid isoformat
string: '31/02/2026'``, ``could not convert string to float: 'abc'``, a ``$error`` message built
from the payload). Reasons end up in the journal, the DLQ listing, logs and run summaries, so
they are built here from the error's *kind* and the *field* being computed, and the original
text goes to the failure's ``detail``, shown only by ``dovetail dlq show`` (masked).
"""

from __future__ import annotations

_KIND_BY_CODE = {
    "T2001": "not a number",
    "T2002": "not a number",
    "D1002": "not a number",
    "D3030": "not a number",
    "D1001": "number out of range",
    "D3061": "number out of range",
    "D3110": "invalid date",
    "D3132": "invalid date format",
    "D3133": "invalid date format",
    "D3135": "invalid date format",
    "D3136": "invalid date",
    "T0410": "argument of the wrong type",
    "T0411": "argument of the wrong type",
    "T0412": "argument of the wrong type",
    "T2003": "range bound not an integer",
    "T2004": "range bound not an integer",
    "T2007": "values of different types compared",
    "T2008": "values of different types compared",
    "T2009": "values of different types compared",
    "T2010": "values of different types compared",
    "T1003": "object key not a string",
    "D1009": "duplicate object key",
    "T1005": "not a function",
    "T1006": "not a function",
    "D3137": "rejected by $error()",
    "D3141": "rejected by $assert()",
    "D3138": "$single() matched more than one value",
    "D3139": "$single() matched nothing",
    "D3140": "malformed URL",
    "D2014": "range operator (..) builds more than 1e6 items",
    "D1011": "recursed too deeply",
    "D1012": "ran too long",
}

_KIND_BY_TEXT = (
    ("isoformat", "invalid date"),
    ("time data", "invalid date"),
    ("day is out of range", "invalid date"),
    ("month must be in", "invalid date"),
    ("could not convert string to float", "not a number"),
    ("invalid literal for int", "not a number"),
    ("decimal", "not a number"),
    ("division by zero", "division by zero"),
)


def error_kind(error: BaseException) -> str:
    """A short, value-free name for what went wrong (``invalid date``, ``not a number``)."""
    code = getattr(error, "error", None)
    if isinstance(code, str) and code in _KIND_BY_CODE:
        return _KIND_BY_CODE[code]
    if isinstance(code, str) and code[:1] in {"T", "D"} and code[1:].isdigit():
        return f"JSONata error {code}"
    text = str(error).lower()
    for needle, kind in _KIND_BY_TEXT:
        if needle in text:
            return kind
    if isinstance(error, ZeroDivisionError):
        return "division by zero"
    if isinstance(error, KeyError):
        return "missing field"
    if isinstance(error, TypeError):
        return "value of the wrong type"
    if isinstance(error, ValueError):
        return "invalid value"
    return type(error).__name__


def field_at(source: str, position: int | None) -> str | None:
    """The dotted path of object-constructor keys enclosing ``position`` in JSONata
    ``source`` (``order.date`` in ``{"order": {"date": $toMillis(d)}}``); ``None`` outside
    any object constructor or without a position."""
    if position is None or position <= 0:
        return None
    # one entry per open bracket: its kind, and for "{" the key whose value is being read
    stack: list[list[str | None]] = []
    expect_key = False
    end = min(position, len(source))
    i = 0
    while i < end:
        char = source[i]
        if char in "\"'`":
            close = _closing_quote(source, i)
            if expect_key and stack and stack[-1][0] == "{":
                after = close + 1
                while after < len(source) and source[after].isspace():
                    after += 1
                if after < len(source) and source[after] == ":":
                    stack[-1][1] = source[i + 1 : close]
            expect_key = False
            i = close + 1
            continue
        if char in "{([":
            stack.append([char, None])
            expect_key = char == "{"
        elif char in "})]":
            if stack:
                stack.pop()
            expect_key = False
        elif char == ",":
            expect_key = bool(stack) and stack[-1][0] == "{"
        elif not char.isspace():
            expect_key = False
        i += 1
    keys = [key for kind, key in stack if kind == "{" and key is not None]
    return ".".join(keys) if keys else None


def _closing_quote(source: str, start: int) -> int:
    """Index of the quote closing the string opened at ``start`` (the end when unclosed)."""
    quote = source[start]
    i = start + 1
    while i < len(source):
        if source[i] == "\\":
            i += 2
            continue
        if source[i] == quote:
            return i
        i += 1
    return len(source)


def describe(field: str | None, kind: str) -> str:
    """``field order_date: invalid date``, or only the kind when the field is unknown."""
    return f"field {field}: {kind}" if field else kind
