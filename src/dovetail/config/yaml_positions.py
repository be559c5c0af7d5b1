"""YAML loading that keeps line/column positions, for ``file:line:col`` errors.

ruamel.yaml's round-trip loader builds only plain mappings, sequences and scalars (no Python
objects from tags), so it is safe for untrusted files; it also records where each node starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from dovetail.errors import ConfigError, Problem

PathKey = tuple[str | int, ...]


@dataclass
class Located:
    """Plain data from a YAML file plus the 1-based position of every key and value."""

    path: str
    data: Any
    keys: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    values: dict[PathKey, tuple[int, int]] = field(default_factory=dict)

    def position(self, loc: PathKey, *, key: bool = False) -> tuple[int, int]:
        """Best position for ``loc``: the exact node, else its nearest located ancestor."""
        probe = tuple(loc)
        while True:
            table = (self.keys, self.values) if key else (self.values, self.keys)
            for positions in table:
                if probe in positions:
                    return positions[probe]
            if not probe:
                return (1, 1)
            probe = probe[:-1]

    def problem(self, loc: PathKey, message: str, *, key: bool = False) -> Problem:
        line, col = self.position(loc, key=key)
        return Problem(self.path, line, col, message)


def _plain(node: Any, loc: PathKey, located: Located) -> Any:
    if isinstance(node, CommentedMap):
        result: dict[str, Any] = {}
        for k, v in node.items():
            child = (*loc, str(k))
            try:
                kl, kc = node.lc.key(k)
                located.keys[child] = (kl + 1, kc + 1)
                vl, vc = node.lc.value(k)
                located.values[child] = (vl + 1, vc + 1)
            except (KeyError, TypeError):
                pass
            result[str(k)] = _plain(v, child, located)
        return result
    if isinstance(node, CommentedSeq):
        items: list[Any] = []
        for index, v in enumerate(node):
            child = (*loc, index)
            try:
                line, col = node.lc.item(index)
                located.values[child] = (line + 1, col + 1)
            except (KeyError, TypeError, IndexError):
                pass
            items.append(_plain(v, child, located))
        return items
    if isinstance(node, str):
        return str(node)
    if node is None or isinstance(node, bool):
        return node
    if isinstance(node, int):  # ruamel's ScalarInt/ScalarFloat keep formatting; drop it
        return int(node)
    if isinstance(node, float):
        return float(node)
    return str(node)


def load_yaml(path: Path, display: str | None = None, *, text: str | None = None) -> Located:
    """Load one YAML document with positions; raises ``ConfigError`` on syntax errors."""
    shown = display or str(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError([Problem(shown, 1, 1, "file not found")]) from None
        except UnicodeDecodeError as exc:
            raise ConfigError([Problem(shown, 1, 1, f"not UTF-8 text: {exc.reason}")]) from None
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    located = Located(path=shown, data=None)
    try:
        node = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        message = " ".join(part for part in (exc.context, exc.problem) if part)
        raise ConfigError([Problem(shown, line, col, f"YAML syntax error: {message}")]) from None
    except Exception as exc:  # ruamel raises a few unmarked errors (e.g. duplicate keys)
        raise ConfigError([Problem(shown, 1, 1, f"YAML error: {exc}")]) from None
    located.data = _plain(node, (), located)
    return located
