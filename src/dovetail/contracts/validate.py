"""Checking messages against a sink's contract, in ``dovetail test`` and (``enforce``) at run.

``ContractValidator`` compiles the contract once (jsonschema-rs, Draft 2020-12; values are
masked in messages so no payload data reaches a dead-letter reason). ``ContractGuard`` wraps
a sink: messages that break the contract are failed with ``ValidationFailed`` (dead-lettered,
never retried) before the sink sees them; the rest are written as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import orjson

from dovetail.contracts.config import ContractConfig
from dovetail.contracts.openapi import (
    ContractError,
    as_json_schema,
    find_operation,
    load_document,
    request_schema,
)
from dovetail.core.component import Sink
from dovetail.core.envelope import Envelope
from dovetail.errors import ValidationFailed

MAX_SHOWN = 3


class ContractValidator:
    """One contract, compiled: ``violations(payload)`` lists how a payload breaks it."""

    def __init__(self, contract: ContractConfig, project_dir: Path) -> None:
        import jsonschema_rs

        self.contract = contract
        path = contract.file(project_dir)
        document = _load(path)
        if contract.openapi is not None:
            if not str(document.get("openapi", "")).startswith("3"):
                raise ContractError(f"{path.name} is not an OpenAPI 3 document")
            operation = find_operation(document, str(contract.operation), path.name)
            body = request_schema(document, operation)
            if body is None:
                raise ContractError(f"{operation.label} in {path.name} takes no JSON request body")
            schema = as_json_schema(document, body)
        else:
            if "openapi" in document:
                raise ContractError(
                    f"{path.name} is an OpenAPI document: write {contract.json_schema}#operationId"
                )
            schema = document
        try:
            self._validator = jsonschema_rs.validator_for(schema, mask="***")
        except Exception as exc:  # jsonschema-rs reports bad schemas with ValueError and others
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ContractError(f"{path.name}: invalid schema: {first}") from None

    def violations(self, payload: Any) -> list[str]:
        """``at /pointer: message`` per violation (a few at most); empty when it conforms."""
        if self._validator.is_valid(payload):
            return []
        errors = list(islice(self._validator.iter_errors(payload), MAX_SHOWN + 1))
        shown = [f"at {_pointer(e.instance_path)}: {e.message}" for e in errors[:MAX_SHOWN]]
        if len(errors) > MAX_SHOWN:
            shown.append("(and more)")
        return shown

    def reason(self, violations: list[str]) -> str:
        """The dead-letter reason for ``violations``."""
        return f"contract {self.contract.label} violated " + "; ".join(violations)


class ContractGuard:
    """A sink wrapper that dead-letters messages breaking the contract before they are sent."""

    def __init__(self, sink: Sink, validator: ContractValidator) -> None:
        self.sink = sink
        self.validator = validator
        self.name = sink.name

    async def open(self) -> None:
        await self.sink.open()

    async def close(self) -> None:
        await self.sink.close()

    async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
        """Check every message; write the conforming ones; fail the others permanently."""
        results: list[BaseException | None] = [None] * len(batch)
        passing: list[int] = []
        for index, envelope in enumerate(batch):
            found = self.validator.violations(_plain(envelope.payload))
            if found:
                results[index] = ValidationFailed(self.validator.reason(found))
            else:
                passing.append(index)
        if passing:
            written = await self.sink.write([batch[i] for i in passing])
            for index, outcome in zip(passing, written, strict=True):
                results[index] = outcome
        return results

    def __getattr__(self, name: str) -> Any:
        # sink-specific extras (an authenticator, statistics) stay reachable through the guard
        return getattr(self.sink, name)


def contract_of(config: Any) -> ContractConfig | None:
    """The contract a sink config declares, if any."""
    contract = getattr(config, "contract", None)
    return contract if isinstance(contract, ContractConfig) else None


def guard_sink(sink: Sink, config: Any, project_dir: Path) -> Sink:
    """``sink`` wrapped in a ``ContractGuard`` when its contract says ``enforce: true``."""
    contract = contract_of(config)
    if contract is None or not contract.enforce:
        return sink
    guard: Sink = ContractGuard(sink, ContractValidator(contract, project_dir))
    return guard


def _load(path: Path) -> dict[str, Any]:
    if path.suffix.lower() == ".json":
        try:
            value = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ContractError(f"{path.name} is not readable JSON: {exc}") from None
        if not isinstance(value, dict):
            raise ContractError(f"{path.name} does not hold a JSON object")
        return value
    return load_document(path)


def _plain(payload: Any) -> Any:
    """The payload as JSON sees it (dates as text, tuples as lists), as the sink sends it."""
    try:
        return orjson.loads(orjson.dumps(payload, default=str))
    except TypeError:
        return payload


def _pointer(parts: list[str | int]) -> str:
    escaped = (str(p).replace("~", "~0").replace("/", "~1") for p in parts)
    return "/" + "/".join(escaped)
