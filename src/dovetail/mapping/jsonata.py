"""The one place JSONata is imported. Expressions come only from flow files, never from data.

``compile_expression`` parses once; ``Expression.evaluate`` runs it on a payload. A compiler
from JSONata to Python can replace the interpreter here without touching anything else.
Simple dotted paths (``customer.email``) take a fast path that skips the interpreter.

Every evaluation is bounded (``EvaluationLimits``): a wall-clock time limit, a limit on the
depth of nested evaluation (runaway recursion) and on the size of ranges (``[1..100000000]``);
a breach fails the message with ``MappingFailed`` instead of hanging the flow. ``$eval`` is
refused at compile time, because it would evaluate text taken from message data.

A failed evaluation raises ``MappingFailed`` whose reason names the field being computed and
the kind of error (``field order_date: invalid date``), never the expression or a value; the
full error text is its ``detail`` (``failures.py``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import jsonata

from dovetail.errors import MappingFailed
from dovetail.mapping.failures import describe, error_kind, field_at
from dovetail.safety.limits import (
    DEFAULT_EXPRESSION_DEPTH,
    DEFAULT_EXPRESSION_RANGE,
    DEFAULT_EXPRESSION_SECONDS,
)

_SIMPLE_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_RESERVED = {"true", "false", "null", "and", "or", "in"}


@dataclass(frozen=True, slots=True)
class EvaluationLimits:
    """Bounds of one evaluation; ``None`` switches a bound off (never do so for real flows)."""

    seconds: float | None = DEFAULT_EXPRESSION_SECONDS
    """Wall-clock time one evaluation may take."""
    depth: int | None = DEFAULT_EXPRESSION_DEPTH
    """How deeply evaluation may nest (recursive functions count one level per call)."""
    range_items: int | None = DEFAULT_EXPRESSION_RANGE
    """Most items a range expression (``[a..b]``) may produce."""


DEFAULT_LIMITS = EvaluationLimits()

_CHECK_CLOCK_EVERY = 64


class _Guard:
    """The entry/exit callbacks of one evaluation: counts depth, watches time and ranges."""

    __slots__ = ("calls", "deadline", "depth", "limits", "position", "source")

    def __init__(self, source: str, limits: EvaluationLimits) -> None:
        self.source = source
        self.limits = limits
        self.depth = 0
        self.calls = 0
        self.position = 0
        """Where in the source the last node entered ends: where a failure happened."""
        self.deadline = None if limits.seconds is None else time.monotonic() + limits.seconds

    def enter(self, expr: Any, data: Any, env: Any) -> None:
        position = expr.position
        if position:
            self.position = position
        if not env.is_parallel_call:
            self.depth += 1
            if self.limits.depth is not None and self.depth > self.limits.depth:
                raise MappingFailed(
                    f"nests deeper than {self.limits.depth} levels (runaway recursion?)"
                )
        self.calls += 1
        if self.deadline is not None and self.calls % _CHECK_CLOCK_EVERY == 0:
            self.check_time()

    def leave(self, expr: Any, data: Any, env: Any, result: Any) -> None:
        if not env.is_parallel_call:
            self.depth -= 1
        limit = self.limits.range_items
        if limit is not None and getattr(expr, "value", None) == ".." and result is not None:
            # jsonata's RangeList reports one item too many; count from its bounds
            size = result.b - result.a if hasattr(result, "b") else len(result)
            if size > limit:
                raise MappingFailed(
                    f"builds a range of {size} items, more than the limit of {limit}"
                )

    def check_time(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise MappingFailed(f"ran longer than {self.limits.seconds:g}s; stopped")


def _uses_eval(node: Any, seen: set[int] | None = None) -> bool:
    """True when the parsed expression refers to ``$eval`` anywhere."""
    seen = set() if seen is None else seen
    stack = [node]
    symbol = jsonata.parser.Parser.Symbol
    while stack:
        item = stack.pop()
        if isinstance(item, list | tuple):
            stack.extend(item)
            continue
        if not isinstance(item, symbol) or id(item) in seen:
            continue
        seen.add(id(item))
        if getattr(item, "type", None) == "variable" and getattr(item, "value", None) == "eval":
            return True
        stack.extend(
            value
            for key, value in vars(item).items()
            if key != "_outer_instance" and isinstance(value, symbol | list | tuple)
        )
    return False


class JsonataSyntaxError(ValueError):
    """An expression does not parse; ``position`` is the 0-based character offset."""

    def __init__(self, message: str, position: int | None) -> None:
        super().__init__(message)
        self.position = position


class Expression:
    """A compiled JSONata expression."""

    __slots__ = ("_compiled", "_path", "limits", "source")

    def __init__(self, source: str, limits: EvaluationLimits = DEFAULT_LIMITS) -> None:
        self.source = source
        self.limits = limits
        self._path: tuple[str, ...] | None = None
        stripped = source.strip()
        if _SIMPLE_PATH.match(stripped) and stripped not in _RESERVED:
            self._path = tuple(stripped.split("."))
        try:
            self._compiled = jsonata.Jsonata(source)
        except Exception as exc:
            position = getattr(exc, "location", None)
            raise JsonataSyntaxError(
                f"JSONata syntax error: {exc}", position if isinstance(position, int) else None
            ) from None
        if _uses_eval(self._compiled.ast):
            raise JsonataSyntaxError(
                "JSONata $eval is not allowed: expressions come from flow files, never from"
                " message data",
                source.find("$eval") if "$eval" in source else None,
            )

    def evaluate(self, data: Any, bindings: dict[str, Any] | None = None) -> Any:
        """Evaluate on ``data`` within ``limits``.

        Raises ``MappingFailed`` on a runtime error or when a limit is exceeded: its reason
        names the field and the kind of error, its detail holds the expression and the error.
        """
        if self._path is not None and bindings is None:
            return _walk(data, self._path)
        guard = _Guard(self.source, self.limits)
        env = self._compiled.create_frame()
        for name, value in (bindings or {}).items():
            env.bind(name, value)
        env.set_evaluate_entry_callback(guard.enter)
        env.set_evaluate_exit_callback(guard.leave)
        try:
            result = self._compiled.evaluate(data, env)
            guard.check_time()
        except MappingFailed as exc:
            raise self._failed(exc.reason, exc, guard.position) from None
        except RecursionError as exc:
            raise self._failed("recursed too deeply", exc, guard.position) from None
        except Exception as exc:
            location = getattr(exc, "location", None)
            if not isinstance(location, int) or location <= 0:
                location = guard.position
            raise self._failed(error_kind(exc), exc, location) from None
        return result

    def _failed(self, kind: str, error: BaseException, position: int) -> MappingFailed:
        return MappingFailed(
            describe(field_at(self.source, position), kind),
            detail=f"JSONata {self.source!r} failed: {error}",
        )

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def _walk(data: Any, path: tuple[str, ...]) -> Any:
    """JSONata path semantics for plain dotted paths over objects (arrays map over items)."""
    current = data
    for key in path:
        if isinstance(current, dict):
            current = current.get(key)
        elif isinstance(current, list):
            items = [_walk(item, (key,)) for item in current]
            flat: list[Any] = []
            for item in items:
                if isinstance(item, list):
                    flat.extend(item)
                elif item is not None:
                    flat.append(item)
            current = flat if len(flat) != 1 else flat[0]
            if not flat:
                return None
        else:
            return None
        if current is None:
            return None
    return current


def compile_expression(source: str, limits: EvaluationLimits = DEFAULT_LIMITS) -> Expression:
    """Parse ``source`` once; raises ``JsonataSyntaxError`` with the character position
    (also for ``$eval``, which is refused)."""
    return Expression(source, limits)
