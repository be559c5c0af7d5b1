"""Summarise a JSON Schema as one rule row per field: types, required, constraints.

Nested objects become dotted paths (``customer.email``), array items ``lines[]``; local
``$ref`` (``#/$defs/...``) are followed once. Enumerated values, ``const``, ``default`` and
``examples`` of masked fields are never shown (they could be real values).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from dovetail.projectdocs.model import FieldRuleDoc

MAX_DEPTH = 8
MAX_ENUM = 12
_CONSTRAINTS: tuple[tuple[str, str], ...] = (
    ("minLength", "min length"),
    ("maxLength", "max length"),
    ("minimum", "≥"),
    ("exclusiveMinimum", ">"),
    ("maximum", "≤"),
    ("exclusiveMaximum", "<"),
    ("minItems", "min items"),
    ("maxItems", "max items"),
    ("format", "format"),
)


def load_json_schema(path: Path) -> dict[str, Any]:
    """Read a JSON Schema file; raises ``ValueError`` when it is not a JSON object."""
    data = orjson.loads(path.read_bytes())
    if not isinstance(data, dict):
        raise ValueError("the schema is not a JSON object")
    return data


def field_rules(schema: dict[str, Any], masked: Iterable[str] = ()) -> list[FieldRuleDoc]:
    """One row per property of ``schema`` (recursively), in declaration order."""
    hidden = {path.replace("[]", "") for path in masked}
    rows: list[FieldRuleDoc] = []
    _walk(schema, schema, "", False, hidden, rows, 0)
    return rows


def _resolve(node: Any, root: dict[str, Any]) -> Any:
    ref = node.get("$ref") if isinstance(node, dict) else None
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return node
    target: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, dict) or part not in target:
            return node
        target = target[part]
    if isinstance(target, dict):
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _walk(
    node: Any,
    root: dict[str, Any],
    prefix: str,
    required: bool,
    hidden: set[str],
    rows: list[FieldRuleDoc],
    depth: int,
) -> None:
    node = _resolve(node, root)
    if not isinstance(node, dict) or depth > MAX_DEPTH:
        return
    if prefix:
        rows.append(
            FieldRuleDoc(
                path=prefix,
                types=_types(node),
                required=required,
                constraints=_constraints(node, prefix.replace("[]", "") in hidden),
                pattern=node["pattern"] if isinstance(node.get("pattern"), str) else None,
            )
        )
    properties = node.get("properties")
    if isinstance(properties, dict):
        needed = set(node.get("required") or [])
        for name, child in properties.items():
            path = f"{prefix}.{name}" if prefix else str(name)
            _walk(child, root, path, name in needed, hidden, rows, depth + 1)
    items = _resolve(node.get("items"), root)
    if isinstance(items, dict) and (items.get("properties") or not prefix):
        _walk_items(items, root, prefix, hidden, rows, depth)


def _walk_items(
    items: dict[str, Any],
    root: dict[str, Any],
    prefix: str,
    hidden: set[str],
    rows: list[FieldRuleDoc],
    depth: int,
) -> None:
    path = f"{prefix}[]"
    needed = set(items.get("required") or [])
    for name, child in (items.get("properties") or {}).items():
        _walk(child, root, f"{path}.{name}", name in needed, hidden, rows, depth + 1)


def _types(node: dict[str, Any]) -> str:
    kind = node.get("type")
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    if isinstance(kind, str):
        return kind
    for combinator in ("anyOf", "oneOf"):
        options = node.get(combinator)
        if isinstance(options, list):
            names = [str(o.get("type")) for o in options if isinstance(o, dict) and "type" in o]
            if names:
                return " or ".join(names)
    return "any"


def _constraints(node: dict[str, Any], masked: bool) -> str:
    parts: list[str] = []
    if "enum" in node and isinstance(node["enum"], list):
        values = node["enum"]
        if masked:
            parts.append(f"one of {len(values)} values (masked)")
        else:
            shown = ", ".join(_literal(v) for v in values[:MAX_ENUM])
            more = f" (+{len(values) - MAX_ENUM} more)" if len(values) > MAX_ENUM else ""
            parts.append(f"one of {shown}{more}")
    if "const" in node:
        parts.append("fixed value (masked)" if masked else f"equals {_literal(node['const'])}")
    for key, label in _CONSTRAINTS:
        if key in node:
            parts.append(f"{label} {node[key]}")
    if "default" in node and not masked:
        parts.append(f"default {_literal(node['default'])}")
    if masked:
        parts.append("masked")
    return "; ".join(parts)


def _literal(value: Any) -> str:
    return orjson.dumps(value).decode()
