"""Reading a partner's OpenAPI 3 document: its operations and their JSON schemas.

Documents are loaded with the safe YAML loader (JSON is YAML). Only local references
(``#/components/...``) are followed. OpenAPI 3.0 schemas are turned into JSON Schema
Draft 2020-12 (``nullable``, boolean ``exclusiveMinimum``/``exclusiveMaximum``); 3.1 schemas
already are JSON Schema.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from dovetail.errors import DovetailError

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"


class ContractError(DovetailError):
    """A contract file cannot be read, is not what it claims, or lacks the named operation."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of an OpenAPI document."""

    operation_id: str
    method: str
    """Upper case: ``POST``."""
    path: str
    node: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.method} {self.path} ({self.operation_id})"


def load_document(path: Path) -> dict[str, Any]:
    """The YAML or JSON document at ``path`` as plain data; ``ContractError`` when unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ContractError(f"cannot read {path}: {exc.strerror}") from None
    try:
        document = YAML(typ="safe").load(text)
    except YAMLError as exc:
        raise ContractError(f"{path.name} is not valid YAML or JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ContractError(f"{path.name} does not hold a mapping")
    return document


def load_openapi(path: Path) -> dict[str, Any]:
    """An OpenAPI 3 document; ``ContractError`` when ``path`` holds something else."""
    document = load_document(path)
    if not str(document.get("openapi", "")).startswith("3"):
        raise ContractError(f"{path.name} is not an OpenAPI 3 document (no 'openapi: 3.x')")
    return document


def operations(document: dict[str, Any]) -> dict[str, Operation]:
    """Every operation by its key: the ``operationId``, else ``METHOD /path``."""
    found: dict[str, Operation] = {}
    for path, item in (document.get("paths") or {}).items():
        item = resolve(document, item)
        if not isinstance(item, dict):
            continue
        for method in HTTP_METHODS:
            node = item.get(method)
            if isinstance(node, dict):
                op_id = str(node.get("operationId") or f"{method.upper()} {path}")
                found[op_id] = Operation(op_id, method.upper(), str(path), node)
    return found


def find_operation(document: dict[str, Any], operation_id: str, name: str) -> Operation:
    """The operation ``operation_id``; ``ContractError`` listing the known ones otherwise."""
    found = operations(document)
    if operation_id in found:
        return found[operation_id]
    known = ", ".join(sorted(found)) or "none"
    raise ContractError(f"{name} has no operation {operation_id!r} (operations: {known})")


def resolve(document: dict[str, Any], node: Any, depth: int = 0) -> Any:
    """``node`` with a local ``$ref`` followed (repeatedly); other nodes as they are."""
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and depth < 32:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise ContractError(f"only local references are followed, found {ref!r}")
        target: Any = document
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                raise ContractError(f"reference {ref!r} points nowhere")
            target = target[part]
        node = target
        depth += 1
    return node


def json_media(content: Any) -> dict[str, Any] | None:
    """The JSON media type entry of a ``content`` map (``application/json``, ``*+json``)."""
    if not isinstance(content, dict):
        return None
    for media, entry in content.items():
        kind = str(media).split(";", 1)[0].strip().lower()
        if (kind == "application/json" or kind.endswith("+json")) and isinstance(entry, dict):
            return entry
    return None


def request_schema(document: dict[str, Any], operation: Operation) -> dict[str, Any] | None:
    """The JSON request body schema of ``operation`` (``None``: it takes no JSON body)."""
    body = resolve(document, operation.node.get("requestBody"))
    media = json_media(body.get("content")) if isinstance(body, dict) else None
    schema = media.get("schema") if media else None
    return schema if isinstance(schema, dict) else None


def response_schemas(document: dict[str, Any], operation: Operation) -> dict[str, dict[str, Any]]:
    """The JSON response schema per status code (``200``, ``2XX``, ``default``)."""
    schemas: dict[str, dict[str, Any]] = {}
    for status, response in (operation.node.get("responses") or {}).items():
        response = resolve(document, response)
        media = json_media(response.get("content")) if isinstance(response, dict) else None
        schema = media.get("schema") if media else None
        if isinstance(schema, dict):
            schemas[str(status)] = schema
    return schemas


def as_json_schema(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A self-contained Draft 2020-12 schema for ``schema`` of ``document``.

    The document's ``components`` travel along, so ``#/components/schemas/X`` references
    resolve inside the returned schema.
    """
    legacy = str(document.get("openapi", "")).startswith("3.0")
    root = copy.deepcopy(schema)
    components = copy.deepcopy(document.get("components") or {})
    if legacy:
        root = _from_oas30(root)
        components = _from_oas30(components)
    return {"$schema": DRAFT_2020_12, **root, "components": components}


def _from_oas30(node: Any) -> Any:
    if isinstance(node, list):
        return [_from_oas30(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _from_oas30(value) for key, value in node.items()}
    flag = out.get("nullable")
    if isinstance(flag, bool):
        del out["nullable"]
    if flag is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        elif "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), bool) and out.pop(bound) and limit in out:
            out[bound] = out.pop(limit)
    return out
