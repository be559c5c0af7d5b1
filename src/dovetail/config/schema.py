"""The JSON Schema of the flow format, built from the flow model and every component's model."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from dovetail.config.model import FlowFile
from dovetail.plugins.registry import Registry, default_registry
from dovetail.plugins.spec import ComponentSpec, Kind

SCHEMA_ID = "https://dovetail.dev/schemas/flow.schema.json"


def _component_schema(spec: ComponentSpec, defs: dict[str, Any]) -> dict[str, Any]:
    schema = spec.config.model_json_schema(ref_template="#/$defs/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        defs.setdefault(name, definition)
    key = f"{spec.kind}.{spec.name}"
    defs[key] = schema
    value: dict[str, Any] = {"$ref": f"#/$defs/{key}"}
    if spec.shorthand is not None:
        value = {"anyOf": [value, {"type": "string"}]}
    return {
        "type": "object",
        "title": spec.name,
        "description": spec.summary,
        "properties": {spec.name: value},
        "required": [spec.name],
        "additionalProperties": False,
    }


def _choice(kind: Kind, registry: Registry, defs: dict[str, Any]) -> dict[str, Any]:
    return {"oneOf": [_component_schema(spec, defs) for spec in registry.all(kind)]}


def flow_schema(registry: Registry | None = None) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a flow file, for editors and docs."""
    registry = registry or default_registry()
    base: dict[str, Any] = FlowFile.model_json_schema(ref_template="#/$defs/{model}")
    defs: dict[str, Any] = base.pop("$defs", {})
    properties = base["properties"]
    properties["source"] = {
        **_choice("source", registry, defs),
        "description": properties["source"].get("description", ""),
    }
    properties["steps"] = {
        "type": "array",
        "description": properties["steps"].get("description", ""),
        "items": _choice("step", registry, defs),
    }
    sink_choice = _choice("sink", registry, defs)
    properties["sink"] = {**sink_choice, "description": properties["sink"].get("description", "")}
    properties["sinks"] = {
        "type": "object",
        "description": properties["sinks"].get("description", ""),
        "additionalProperties": sink_choice,
        "minProperties": 1,
    }
    base["oneOf"] = [{"required": ["sink"]}, {"required": ["sinks"]}]
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **base,
        "$defs": dict(sorted(defs.items())),
    }
    result: dict[str, Any] = _allow_references(schema)
    return result


REFERENCE_STRING = {"type": "string", "pattern": r"\$\{(env|secret|var):[^}]+\}"}


def _allow_references(node: Any) -> Any:
    """Numbers and booleans may also be written as ``${env:...}`` references."""
    if isinstance(node, list):
        return [_allow_references(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: _allow_references(value) for key, value in node.items()}
    if result.get("type") in {"integer", "number", "boolean"}:
        typed = {k: v for k, v in result.items() if k not in {"title", "description", "default"}}
        kept = {k: v for k, v in result.items() if k in {"title", "description", "default"}}
        return {**kept, "anyOf": [typed, REFERENCE_STRING]}
    return result


def model_fields_table(model: type[BaseModel]) -> list[dict[str, str]]:
    """Rows (name, type, default, required, description) for a config model's reference docs."""
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        rows.append(
            {
                "name": name,
                "type": _type_label(prop),
                "required": "yes" if name in required else "no",
                "default": "" if "default" not in prop else repr(prop["default"]),
                "description": " ".join(str(prop.get("description", "")).split()),
            }
        )
    return rows


def _type_label(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        return str(prop["$ref"]).rsplit("/", 1)[-1]
    if "enum" in prop:
        return " | ".join(repr(v) for v in prop["enum"])
    if "const" in prop:
        return repr(prop["const"])
    if "anyOf" in prop:
        labels = [_type_label(p) for p in prop["anyOf"]]
        return " | ".join(dict.fromkeys(labels))
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list[{_type_label(prop.get('items', {}))}]"
    if kind == "object" and "additionalProperties" in prop:
        extra = prop["additionalProperties"]
        inner = _type_label(extra) if isinstance(extra, dict) else "any"
        return f"map[{inner}]"
    return str(kind)
