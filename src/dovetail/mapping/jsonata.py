"""The one place JSONata is imported. Expressions come only from flow files, never from data.

``compile_expression`` parses once; ``Expression.evaluate`` runs it on a payload. A compiler
from JSONata to Python can replace the interpreter here without touching anything else.
Simple dotted paths (``customer.email``) take a fast path that skips the interpreter.
"""

from __future__ import annotations

import re
from typing import Any

import jsonata

from dovetail.errors import MappingFailed

_SIMPLE_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_RESERVED = {"true", "false", "null", "and", "or", "in"}


class JsonataSyntaxError(ValueError):
    """An expression does not parse; ``position`` is the 0-based character offset."""

    def __init__(self, message: str, position: int | None) -> None:
        super().__init__(message)
        self.position = position


class Expression:
    """A compiled JSONata expression."""

    __slots__ = ("_compiled", "_path", "source")

    def __init__(self, source: str) -> None:
        self.source = source
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

    def evaluate(self, data: Any, bindings: dict[str, Any] | None = None) -> Any:
        """Evaluate on ``data``. Raises ``MappingFailed`` on a runtime error."""
        if self._path is not None and bindings is None:
            return _walk(data, self._path)
        try:
            if bindings:
                env = self._compiled.create_frame()
                for name, value in bindings.items():
                    env.bind(name, value)
                return self._compiled.evaluate(data, env)
            return self._compiled.evaluate(data)
        except Exception as exc:
            raise MappingFailed(f"JSONata {self.source!r} failed: {exc}") from None

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


def compile_expression(source: str) -> Expression:
    """Parse ``source`` once; raises ``JsonataSyntaxError`` with the character position."""
    return Expression(source)
