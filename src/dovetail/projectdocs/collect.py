"""Build the documentation model of a loaded flow.

Configuration text comes from ``Flow.raw``, the flow file as written (environment overrides
layered, references not resolved), so no resolved secret or environment value reaches the
docs. Structured facts (durations, route branches, sheet rows) come from validated configs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from dovetail.config.model import ComponentRef, Flow
from dovetail.mapping.sheet_loader import load_sheet
from dovetail.observability.masking import MASK, MaskPolicy
from dovetail.projectdocs.model import (
    DeliveryDoc,
    EndpointDoc,
    FlowDoc,
    MappingDoc,
    MappingRowDoc,
    ReferenceDoc,
    RouteDoc,
    StepDoc,
    ValidationDoc,
)
from dovetail.projectdocs.schema_rules import field_rules, load_json_schema

USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)[^/@\s]*@")
ENDPOINT_KEYS: tuple[str, ...] = (
    "url",
    "bootstrap_servers",
    "host",
    "base_path",
    "operation",
    "folder",
    "path",
    "queue",
    "exchange",
    "routing_key",
    "stream",
    "subject",
    "topic",
    "topics",
    "table",
    "filename",
)
EVENT_SOURCES: dict[str, str] = {
    "http": "on request (webhook)",
    "api": "on request (API call)",
    "amqp": "on message (queue consumer)",
    "kafka": "on message (consumer group)",
    "nats": "on message (JetStream consumer)",
    "mqtt": "on message (subscription)",
    "redis": "on message (stream consumer group)",
}
STEP_FAILURES: dict[str, str] = {
    "validate": "a schema violation is permanent: dead letter with the violations as reason",
    "map": "a mapping error (required field empty, bad value) is permanent: dead letter",
    "split": "a path that does not give an array is permanent: dead letter",
    "python": "an exception in the function is permanent: dead letter with its message",
}


def strip_credentials(text: str) -> str:
    """A URL without ``user:password@`` and without its query string."""
    text = USERINFO.sub(r"\1", text.strip())
    return text.split("?", 1)[0] if "://" in text else text


def _scalar(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_scalar(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_scalar(v)}" for k, v in value.items())
    return str(value)


def _raw_component(item: Any) -> tuple[str, Any]:
    if isinstance(item, dict) and len(item) == 1:
        ((name, raw),) = item.items()
        return str(name), raw
    return "?", item


def endpoint(label: str, item: Any, ref: ComponentRef) -> EndpointDoc:
    """A source or sink as documented: target text from the raw config, credentials removed."""
    name, raw = _raw_component(item)
    raw = raw if isinstance(raw, dict) else {}
    parts: list[str] = []
    for key in ENDPOINT_KEYS:
        if key not in raw or raw[key] in (None, "", []):
            continue
        value = _scalar(raw[key])
        if key == "url":
            value = strip_credentials(value)
        elif key == "host" and "port" in raw:
            value = f"{value}:{raw['port']}"
        if key == "path" and name == "http" and "host" in raw and parts:
            parts[-1] += value
            continue
        parts.append(value if key in ("url", "host", "path") else f"{key} {value}")
    if name == "http" and ref.kind == "sink":
        parts.insert(0, str(raw.get("method", "POST")))
    overrides = {
        key: [int(code) for code in raw[key]]
        for key in ("success", "already_delivered", "permanent", "transient")
        if isinstance(raw.get(key), list)
    }
    auth = raw.get("auth")
    return EndpointDoc(
        label=label,
        component=name,
        target=" ".join(parts),
        trigger=_trigger(name, raw, ref) if ref.kind == "source" else "",
        rate_limit=None if raw.get("rate_limit") is None else str(raw["rate_limit"]),
        status_overrides=overrides,
        auth=", ".join(str(k) for k in auth) if isinstance(auth, dict) else None,
    )


def _trigger(name: str, raw: dict[str, Any], ref: ComponentRef) -> str:
    if raw.get("cron"):
        return f"cron {raw['cron']} ({raw.get('timezone', 'UTC')})"
    if raw.get("interval"):
        return f"every {raw['interval']}"
    if name in EVENT_SOURCES:
        return EVENT_SOURCES[name]
    interval = getattr(ref.config, "poll_interval", None)
    if isinstance(interval, int | float):
        return f"polls every {interval:g}s"
    return "continuous"


def written(item: Any, ref: ComponentRef) -> dict[str, Any]:
    """A component's options as written in the flow file (shorthand expanded)."""
    _, raw = _raw_component(item)
    if isinstance(raw, dict):
        return raw
    return {ref.spec.shorthand: raw} if ref.spec.shorthand and raw is not None else {}


def step_doc(index: int, item: Any, ref: ComponentRef) -> StepDoc:
    """One step with a one-line summary of what it does, from the options as written."""
    name = ref.spec.name
    raw = written(item, ref)

    def option(key: str, attribute: str | None = None) -> str:
        return _scalar(raw[key]) if key in raw else _scalar(getattr(ref.config, attribute or key))

    routes: tuple[RouteDoc, ...] = ()
    otherwise: str | tuple[str, ...] | None = None
    if name == "validate":
        summary = f"schema {option('schema', 'schema_file')}"
    elif name == "map":
        summary = (
            f"sheet {raw['sheet']}" if raw.get("sheet") else _jsonata_summary(option("jsonata"))
        )
    elif name == "lookup":
        summary = (
            f"{option('key')} in {option('table')} into {option('into')}"
            f" (missing: {option('on_missing')})"
        )
    elif name == "filter":
        summary = f"keep when {option('condition')}"
    elif name == "route":
        routes = tuple(
            RouteDoc(when=_scalar(r.get("when")), to=tuple(_names(r.get("to"))))
            for r in raw.get("routes") or []
            if isinstance(r, dict)
        )
        other = ref.config.otherwise
        otherwise = tuple(other) if isinstance(other, list) else other
        summary = f"{len(routes)} route(s), {ref.config.mode} match"
    elif name == "split":
        summary = f"one message per item of {option('path')}"
    elif name == "python":
        summary = f"function {option('function')}"
    else:
        summary = _scalar(raw)
    return StepDoc(index=index, component=name, summary=summary, routes=routes, otherwise=otherwise)


def _names(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)] if value is not None else []


def _jsonata_summary(value: str) -> str:
    return f"JSONata {value.strip()}" if value.strip().endswith(".jsonata") else "JSONata (inline)"


def _step_failure(step: StepDoc, ref: ComponentRef) -> str | None:
    if step.component == "lookup":
        outcome = {
            "dead_letter": "dead letter",
            "null": "writes null and continues",
            "keep": "continues unchanged",
            "default": "writes the default and continues",
        }[ref.config.on_missing]
        return f"key not found in {ref.config.table}: {outcome}"
    if step.component == "filter":
        return "condition false: filtered out (acknowledged, not delivered, not dead-lettered)"
    if step.component == "route":
        if step.otherwise == "dead_letter":
            return "no route matches: dead letter (reason 'route: no route matched')"
        if step.otherwise == "drop":
            return "no route matches: dropped (acknowledged, not delivered)"
        return f"no route matches: sent to {', '.join(step.otherwise or ())}"
    return STEP_FAILURES.get(step.component)


def mapping_doc(
    step: StepDoc, item: Any, ref: ComponentRef, flow: Flow, mask: set[str]
) -> MappingDoc:
    """A ``map`` step: the sheet's rows (masked constants hidden) or the JSONata as written."""
    config = ref.config
    if config.sheet is not None:
        sheet = load_sheet(flow.project_dir / config.sheet, name=config.sheet)
        rows = tuple(_row(row.target, row.source, row.transform, row, mask) for row in sheet.rows)
        return MappingDoc(
            step=step.index, file=config.sheet, rows=rows, description=sheet.description
        )
    file = str(config.jsonata).strip()
    if file.endswith(".jsonata"):
        return MappingDoc(
            step=step.index,
            file=file,
            jsonata=(flow.project_dir / file).read_text(encoding="utf-8"),
        )
    text = str(written(item, ref).get("jsonata", config.jsonata))
    return MappingDoc(step=step.index, file=None, jsonata=text)


def _row(target: str, source: str, transform: str, row: Any, mask: set[str]) -> MappingRowDoc:
    if target in mask or source in mask:
        if source.startswith(("=", "'", '"')):
            source = MASK
        transform = re.sub(r"default:[^|]*", f"default:{MASK}", transform)
    return MappingRowDoc(
        target=target, source=source, transform=transform, required=row.required, note=row.note
    )


def validation_doc(step: StepDoc, ref: ComponentRef, flow: Flow, mask: set[str]) -> ValidationDoc:
    """A ``validate`` step: field rules of a JSON Schema, or a reference to an XSD."""
    name: str = ref.config.schema_file
    path = flow.project_dir / name
    if path.suffix.lower() == ".xsd":
        return ValidationDoc(step=step.index, file=name, kind="xsd")
    try:
        schema = load_json_schema(path)
    except (OSError, ValueError) as exc:
        return ValidationDoc(step=step.index, file=name, kind="json-schema", problem=str(exc))
    title = schema.get("title")
    return ValidationDoc(
        step=step.index,
        file=name,
        kind="json-schema",
        title=str(title) if title else None,
        rules=tuple(field_rules(schema, mask)),
    )


def delivery_doc(flow: Flow, steps: list[StepDoc]) -> DeliveryDoc:
    """Error handling as declared: retries, circuit breaker, idempotency, ordering, steps."""
    spec = flow.spec.delivery
    failures = [
        f"{step.component} (step {step.index + 1}): {text}"
        for step, ref in zip(steps, flow.steps, strict=True)
        if (text := _step_failure(step, ref)) is not None
    ]
    return DeliveryDoc(
        idempotency_key=spec.idempotency_key,
        attempts=spec.retry.attempts,
        initial=spec.retry.initial,
        max=spec.retry.max,
        multiplier=spec.retry.multiplier,
        park_after=spec.retry.park_after,
        dead_letter=spec.dead_letter,
        circuit_failures=spec.circuit_breaker.failures if spec.circuit_breaker else None,
        circuit_reset=spec.circuit_breaker.reset if spec.circuit_breaker else None,
        ordering_key=spec.ordering.key if spec.ordering else None,
        idempotency_retention=spec.idempotency_retention,
        step_failures=tuple(failures),
    )


def case_summary(flow: Flow) -> tuple[int, Any]:
    """How many test cases the flow has, and the first case's input message (masked)."""
    folder = flow.project_dir / "tests" / flow.name
    paths = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if folder.is_dir() else []
    example: Any = None
    for path in paths:
        try:
            data = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, YAMLError):
            continue
        given = data.get("input") if isinstance(data, dict) else None
        if isinstance(given, dict) and isinstance(given.get("message"), dict):
            example = MaskPolicy.of_spec(flow.spec.observability).payload(given["message"])
            break
    return len(paths), example


def flow_doc(flow: Flow, file: str, references: list[ReferenceDoc]) -> FlowDoc:
    """Everything documented about ``flow``; raises ``ConfigError`` if a sheet is unreadable."""
    raw = flow.raw
    mask = set(flow.spec.observability.mask)
    raw_steps = raw.get("steps") or []
    steps = [step_doc(i, raw_steps[i], ref) for i, ref in enumerate(flow.steps)]
    raw_sinks: dict[str, Any] = (
        {"sink": raw["sink"]} if raw.get("sink") is not None else dict(raw.get("sinks") or {})
    )
    sinks = tuple(endpoint(label, raw_sinks[label], ref) for label, ref in flow.sinks.items())
    mappings = tuple(
        mapping_doc(step, raw_steps[step.index], ref, flow, mask)
        for step, ref in zip(steps, flow.steps, strict=True)
        if step.component == "map"
    )
    validations = tuple(
        validation_doc(step, ref, flow, mask)
        for step, ref in zip(steps, flow.steps, strict=True)
        if step.component == "validate"
    )
    count, example = case_summary(flow)
    return FlowDoc(
        name=flow.name,
        version=flow.version,
        description=flow.spec.description,
        owner=flow.spec.owner,
        file=file,
        status="valid",
        source=endpoint("source", raw.get("source"), flow.source),
        steps=tuple(steps),
        sinks=sinks,
        mappings=mappings,
        validations=validations,
        delivery=delivery_doc(flow, steps),
        references=tuple(references),
        mask=tuple(flow.spec.observability.mask),
        test_cases=count,
        example=example,
    )


def relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when inside it."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
