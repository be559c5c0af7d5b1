"""Breaking changes between two versions of a partner's OpenAPI document.

Breaking, for a flow that calls the partner: an operation or path removed; a request field
removed or newly required; a required parameter added; a response field removed; a field's
type changed; enum values removed. Each change names the operation, the side (request or
response) and the dotted field path (array items are looked through: ``lines.sku``), so it
can be matched against the fields a flow's mappings write and read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from dovetail.contracts.openapi import (
    Operation,
    operations,
    request_schema,
    resolve,
    response_schemas,
)

Side = Literal["request", "response", "operation"]


@dataclass(frozen=True, slots=True)
class FieldShape:
    """What a schema says about one field."""

    types: frozenset[str]
    required: bool
    enum: tuple[Any, ...] | None


@dataclass(slots=True)
class BreakingChange:
    """One change that can break a caller, and the flow usage it touches (if any)."""

    kind: str
    operation: str
    side: Side
    detail: str
    field: str | None = None
    used_by: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "operation": self.operation,
            "side": self.side,
            "field": self.field,
            "detail": self.detail,
            "used_by": self.used_by,
        }


@dataclass
class SpecDiff:
    """Every breaking change between two documents."""

    changes: list[BreakingChange] = field(default_factory=list)

    @property
    def touching(self) -> list[BreakingChange]:
        """The changes that touch a field or operation the flow uses."""
        return [change for change in self.changes if change.used_by is not None]


def diff_specs(old: dict[str, Any], new: dict[str, Any]) -> SpecDiff:
    """The breaking changes from ``old`` to ``new`` (OpenAPI 3 documents as plain data)."""
    result = SpecDiff()
    old_ops = _by_route(operations(old))
    new_ops = _by_route(operations(new))
    new_ids = {op.operation_id: op for op in new_ops.values()}
    new_paths = {op.path for op in new_ops.values()}
    for route, before in sorted(old_ops.items()):
        after = new_ops.get(route) or new_ids.get(before.operation_id)
        if after is None:
            kind = "path removed" if before.path not in new_paths else "operation removed"
            result.changes.append(
                BreakingChange(kind, before.operation_id, "operation", f"{before.label} is gone")
            )
            continue
        result.changes.extend(_operation_changes(old, new, before, after))
    return result


def _by_route(found: dict[str, Operation]) -> dict[tuple[str, str], Operation]:
    return {(op.method, op.path): op for op in found.values()}


def _operation_changes(
    old: dict[str, Any], new: dict[str, Any], before: Operation, after: Operation
) -> list[BreakingChange]:
    name = before.operation_id
    changes: list[BreakingChange] = []
    if (before.method, before.path) != (after.method, after.path):
        changes.append(
            BreakingChange(
                "operation moved", name, "operation", f"{before.label} is now {after.label}"
            )
        )
    old_params = _parameters(old, before)
    for key, required in sorted(_parameters(new, after).items()):
        if required and not old_params.get(key, False):
            where, param = key
            changes.append(
                BreakingChange(
                    "parameter newly required",
                    name,
                    "request",
                    f"{where} parameter {param!r} is now required",
                    field=param,
                )
            )
    old_body = _fields(old, request_schema(old, before))
    new_body = _fields(new, request_schema(new, after))
    for path, shape in sorted(old_body.items()):
        if path not in new_body:
            changes.append(
                BreakingChange(
                    "request field removed", name, "request", "no longer accepted", field=path
                )
            )
        else:
            changes.extend(_shape_changes(name, "request", path, shape, new_body[path]))
    for path, shape in sorted(new_body.items()):
        if shape.required and (path not in old_body or not old_body[path].required):
            what = "new required field" if path not in old_body else "now required"
            changes.append(
                BreakingChange("request field newly required", name, "request", what, field=path)
            )
    old_out = _success_fields(old, before)
    new_out = _success_fields(new, after)
    for path, shape in sorted(old_out.items()):
        if path not in new_out:
            changes.append(
                BreakingChange(
                    "response field removed", name, "response", "no longer returned", field=path
                )
            )
        else:
            changes.extend(_shape_changes(name, "response", path, shape, new_out[path]))
    return changes


def _shape_changes(
    operation: str, side: Side, path: str, before: FieldShape, after: FieldShape
) -> list[BreakingChange]:
    changes: list[BreakingChange] = []
    if before.types and after.types and before.types != after.types:
        was, now = "/".join(sorted(before.types)), "/".join(sorted(after.types))
        changes.append(
            BreakingChange(f"{side} type changed", operation, side, f"{was} -> {now}", path)
        )
    if before.enum is not None and after.enum is not None:
        removed = [value for value in before.enum if value not in after.enum]
        if removed:
            shown = ", ".join(repr(v) for v in removed)
            changes.append(
                BreakingChange(
                    "enum values removed", operation, side, f"no longer allowed: {shown}", path
                )
            )
    return changes


def _parameters(document: dict[str, Any], operation: Operation) -> dict[tuple[str, str], bool]:
    item = resolve(document, (document.get("paths") or {}).get(operation.path)) or {}
    found: dict[tuple[str, str], bool] = {}
    for raw in [*(item.get("parameters") or []), *(operation.node.get("parameters") or [])]:
        param = resolve(document, raw)
        if isinstance(param, dict) and "name" in param:
            key = (str(param.get("in", "query")), str(param["name"]))
            found[key] = bool(param.get("required")) or key[0] == "path"
    return found


def _success_fields(document: dict[str, Any], operation: Operation) -> dict[str, FieldShape]:
    merged: dict[str, FieldShape] = {}
    for status, schema in response_schemas(document, operation).items():
        if status.startswith("2"):
            for path, shape in _fields(document, schema).items():
                merged.setdefault(path, shape)
    return merged


def _fields(document: dict[str, Any], schema: Any) -> dict[str, FieldShape]:
    """Every field of ``schema`` by dotted path (array items looked through)."""
    found: dict[str, FieldShape] = {}
    _walk(document, schema, "", True, found, set())
    return found


def _walk(
    document: dict[str, Any],
    schema: Any,
    prefix: str,
    required_here: bool,
    found: dict[str, FieldShape],
    seen: set[str],
) -> None:
    if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        ref = schema["$ref"]
        if ref in seen:
            return
        seen = seen | {ref}
    node = resolve(document, schema)
    if not isinstance(node, dict):
        return
    for part in node.get("allOf") or []:
        _walk(document, part, prefix, required_here, found, seen)
    for key in ("oneOf", "anyOf"):
        for part in node.get(key) or []:
            _walk(document, part, prefix, False, found, seen)
    if "items" in node:
        _walk(document, node["items"], prefix, required_here, found, seen)
    required = set(node.get("required") or [])
    for name, child in (node.get("properties") or {}).items():
        path = f"{prefix}.{name}" if prefix else str(name)
        shape = resolve(document, child)
        is_required = required_here and name in required
        enum = shape.get("enum") if isinstance(shape, dict) else None
        previous = found.get(path)
        found[path] = FieldShape(
            types=_types(shape) | (previous.types if previous else frozenset()),
            required=is_required or (previous.required if previous else False),
            enum=tuple(enum) if isinstance(enum, list) else None,
        )
        _walk(document, child, path, True, found, seen)


def _types(shape: Any) -> frozenset[str]:
    if not isinstance(shape, dict):
        return frozenset()
    kind = shape.get("type")
    if isinstance(kind, str):
        return frozenset({kind})
    if isinstance(kind, list):
        return frozenset(str(k) for k in kind if k != "null")
    return frozenset()
