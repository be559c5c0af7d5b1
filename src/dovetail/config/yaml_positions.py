"""YAML loading that keeps line/column positions, for ``file:line:col`` errors.

ruamel.yaml's round-trip loader builds only plain mappings, sequences and scalars (no Python
objects from tags), so it is safe for untrusted files; it also records where each node starts.
Before loading, the node graph is checked: a tag other than the plain YAML types
(``!!python/object``, ``!custom``...) is a configuration error naming its position, so a tag
can neither run code nor be silently ignored; aliases that would expand to more than
``MAX_EXPANDED_NODES`` nodes or ``MAX_EXPANDED_BYTES`` of text (a "billion laughs" file, or
one long string aliased many times) or refer to themselves are refused. Nesting deeper than
``MAX_DEPTH`` levels is refused while the text is scanned, before anything is built, so a
10,000-deep file is rejected in milliseconds instead of exhausting the parser's recursion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.scanner import RoundTripScanner

from dovetail.errors import ConfigError, Problem

PathKey = tuple[str | int, ...]

_CORE = "tag:yaml.org,2002:"
ALLOWED_TAGS = frozenset(
    _CORE + name
    for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "merge")
)
"""The tags of plain data; any other tag in a flow file is an error."""

MAX_EXPANDED_NODES = 1_000_000
"""How many nodes a file may hold once its aliases are expanded."""

MAX_EXPANDED_BYTES = 8 * 1024 * 1024
"""How many characters of keys and values a file may hold once its aliases are expanded
(and how large the file itself may be)."""

MAX_DEPTH = 100
"""How deeply mappings and sequences (block or flow) may nest."""


class NestingTooDeep(MarkedYAMLError):
    """A YAML text nests mappings and sequences deeper than ``MAX_DEPTH`` levels."""


class DepthBoundedScanner(RoundTripScanner):
    """ruamel's round-trip scanner, refusing nesting deeper than ``MAX_DEPTH`` as it reads.

    Checked on each opening bracket and each deeper indentation, so the parser and composer
    (both recursive, and slow on deep flow collections) never see a deeper document.
    """

    def fetch_flow_collection_start(self, TokenClass: Any, to_push: str) -> None:
        self._check_depth(len(self.flow_context) + 1)
        super().fetch_flow_collection_start(TokenClass, to_push)

    def add_indent(self, column: int) -> bool:
        added = super().add_indent(column)
        if added:
            self._check_depth(0)
        return added

    def _check_depth(self, flow_levels: int) -> None:
        depth = len(self.indents) + max(flow_levels, len(self.flow_context))
        if depth > MAX_DEPTH:
            raise NestingTooDeep(
                problem=f"mappings and sequences nest deeper than {MAX_DEPTH} levels; refused",
                problem_mark=self.reader.get_mark(),
            )


def bounded_yaml() -> YAML:
    """A round-trip YAML loader (positions kept, no Python objects built from tags) whose
    scanner refuses nesting deeper than ``MAX_DEPTH`` (``NestingTooDeep``)."""
    yaml = YAML(typ="rt", pure=True)
    yaml.Scanner = DepthBoundedScanner
    yaml.allow_duplicate_keys = False
    return yaml


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


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def check_nodes(root: Node | None, shown: str) -> None:
    """Refuse tags other than plain data, self-referencing aliases and alias bombs.

    Raises ``ConfigError`` at the offending node's position.
    """
    if root is None:
        return
    sizes: dict[int, tuple[int, int]] = {}  # node -> (nodes, characters) once expanded
    active: set[int] = set()
    problems: list[Problem] = []
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            children = [sizes[id(child)] for child in _children(node)]
            nodes = 1 + sum(count for count, _ in children)
            size = sum(length for _, length in children)
            if isinstance(node, ScalarNode) and isinstance(node.value, str):
                size += len(node.value)
            sizes[key] = (nodes, size)
            if nodes > MAX_EXPANDED_NODES:
                raise ConfigError(
                    [
                        _problem_at(
                            node,
                            shown,
                            f"YAML aliases expand to more than {MAX_EXPANDED_NODES} nodes; refused",
                        )
                    ]
                )
            if size > MAX_EXPANDED_BYTES:
                raise ConfigError(
                    [
                        _problem_at(
                            node,
                            shown,
                            f"YAML aliases expand to more than {MAX_EXPANDED_BYTES} characters"
                            " of text; refused",
                        )
                    ]
                )
            continue
        if key in sizes:
            continue
        if key in active:
            raise ConfigError([_problem_at(node, shown, "YAML alias refers to itself; refused")])
        active.add(key)
        tag = node.tag if isinstance(node.tag, str) else getattr(node.tag, "value", None)
        if tag not in ALLOWED_TAGS:
            shown_tag = "!!" + tag[len(_CORE) :] if tag and tag.startswith(_CORE) else tag
            problems.append(
                _problem_at(
                    node,
                    shown,
                    f"YAML tag {shown_tag} is not allowed: flow and project files hold plain"
                    " data only (tags are never executed)",
                )
            )
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))
    if problems:
        raise ConfigError(problems)


def _problem_at(node: Node, shown: str, message: str) -> Problem:
    mark = node.start_mark
    return Problem(shown, mark.line + 1, mark.column + 1, message)


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
    if len(text) > MAX_EXPANDED_BYTES:
        raise ConfigError(
            [Problem(shown, 1, 1, f"file is larger than {MAX_EXPANDED_BYTES} characters; refused")]
        )
    yaml = bounded_yaml()
    located = Located(path=shown, data=None)
    try:
        check_nodes(yaml.compose(text), shown)
        node = yaml.load(text)
    except ConfigError:
        raise
    except NestingTooDeep as exc:
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        raise ConfigError([Problem(shown, line, col, f"YAML {exc.problem}")]) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        message = " ".join(part for part in (exc.context, exc.problem) if part)
        raise ConfigError([Problem(shown, line, col, f"YAML syntax error: {message}")]) from None
    except Exception as exc:  # ruamel raises a few unmarked errors (e.g. duplicate keys)
        raise ConfigError([Problem(shown, 1, 1, f"YAML error: {exc}")]) from None
    located.data = _plain(node, (), located)
    return located
