"""Code generation for table rows: one straight-line function per set of columns.

``compile_row`` turns the columns a payload fills (in table order, with their converters) into
a function that takes their values positionally, converts each (skipping the converter call
when a value already has the column's Python type), checks the key and returns the row dict in
one display. ``compile_mapped_row`` does the same for a ``columns`` mapping, evaluating each
column's expression on the payload first. A value that does not fit raises ``RowRejected``
naming the column, never the value.

The generated code contains only names it defines and ``repr`` of column names; converters
are passed in its namespace, never as source text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dovetail.connectors.sql.engine import RowRejected
from dovetail.errors import PermanentError

Converter = Callable[[Any], Any]
"""Turns one non-null payload value into the column's Python type; raises on failure."""

_FAILURES = "(Unconvertible, ValueError, TypeError, ArithmeticError)"


class Unconvertible(Exception):
    """A value does not fit its column's type (the caller names the column)."""


class TextOfLength:
    """Text of at most ``length`` characters (the database enforces it; we name the column)."""

    __slots__ = ("_to_text", "length")

    def __init__(self, length: int, to_text: Converter) -> None:
        self.length = length
        self._to_text = to_text

    def __call__(self, value: Any) -> str:
        text: str = value if type(value) is str else self._to_text(value)
        if len(text) > self.length:
            raise Unconvertible(f"value longer than {self.length} characters")
        return text


@dataclass(frozen=True, slots=True)
class ColumnPlan:
    """How one column's value is converted: ``convert`` (``None``: passed as it is), and
    ``skip``, the type a value may already have for ``convert`` to return it unchanged."""

    name: str
    convert: Converter | None
    type_name: str
    skip: type | None = None


def compile_row(
    table: str, columns: Sequence[ColumnPlan], key: Sequence[str]
) -> Callable[..., dict[str, Any]]:
    """The row function for ``columns``: their values in, the converted row dict out."""
    arguments = ", ".join(f"x{n}" for n in range(len(columns)))
    return _generate(table, columns, key, f"def row({arguments}):", [])


def compile_mapped_row(
    table: str,
    columns: Sequence[ColumnPlan],
    expressions: Sequence[Callable[[Any], Any]],
    key: Sequence[str],
) -> Callable[[Any], dict[str, Any]]:
    """The row function of a ``columns`` mapping: the payload in, each column's expression
    evaluated on it and converted, the row dict out (every mapped column, ``None`` when the
    expression gives nothing)."""
    namespace = {f"e{n}": expression for n, expression in enumerate(expressions)}
    reads = [f"    x{n} = e{n}(payload)" for n in range(len(columns))]
    return _generate(table, columns, key, "def row(payload):", reads, namespace)


def _generate(
    table: str,
    columns: Sequence[ColumnPlan],
    key: Sequence[str],
    head: str,
    reads: list[str],
    extra: dict[str, Any] | None = None,
) -> Callable[..., dict[str, Any]]:
    namespace: dict[str, Any] = {
        "Unconvertible": Unconvertible,
        "_reject": lambda n, value, exc: _rejection(columns[n], value, exc),
        "_missing": _key_missing,
        **(extra or {}),
    }
    lines = [head, *reads, "    n = -1", "    try:"]
    for n, column in enumerate(columns):
        if column.convert is None:
            continue
        namespace[f"c{n}"] = column.convert
        value = f"x{n}"
        if isinstance(column.convert, TextOfLength):
            test = f"type({value}) is not str or len({value}) > {column.convert.length}"
        elif column.skip is not None:
            namespace[f"t{n}"] = column.skip
            test = f"type({value}) is not t{n}"
        else:
            test = ""
        condition = f"{value} is not None and ({test})" if test else f"{value} is not None"
        lines += [
            f"        if {condition}:",
            f"            n = {n}",
            f"            {value} = c{n}({value})",
        ]
    given = "".join(f"x{n}, " for n in range(len(columns)))
    lines += [
        "        pass",
        f"    except {_FAILURES} as exc:",
        f"        raise _reject(n, ({given})[n], exc) from None",
    ]
    names = [column.name for column in columns]
    for name in key:
        if name in names:
            value = f"x{names.index(name)}"
            lines += [f"    if {value} is None:", f"        raise _missing({name!r})"]
        else:
            lines.append(f"    raise _missing({name!r})")
    items = ", ".join(f"{name!r}: x{n}" for n, name in enumerate(names))
    lines.append(f"    return {{{items}}}")
    code = compile("\n".join(lines) + "\n", f"<row of {table}>", "exec")
    exec(code, namespace)
    row: Callable[..., dict[str, Any]] = namespace["row"]
    return row


def _rejection(column: ColumnPlan, value: Any, error: Exception) -> RowRejected:
    problem = str(error) if isinstance(error, Unconvertible) else ""
    if not problem:
        problem = f"cannot convert a {type(value).__name__} to {column.type_name}"
    return RowRejected(f"column {column.name!r}: {problem}")


def _key_missing(name: str) -> PermanentError:
    return PermanentError(f"key column {name!r} is missing or null")
