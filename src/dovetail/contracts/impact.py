"""Which breaking changes of a partner's API touch what a flow uses."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dovetail.config.model import Flow
from dovetail.contracts.diff import BreakingChange, SpecDiff
from dovetail.contracts.usage import field_usage
from dovetail.contracts.validate import contract_of

RESPONSE_READERS = frozenset({"poll"})
"""Sources whose messages are a partner API's responses: their mappings read response fields."""


def flow_contracts(flow: Flow, spec_files: Sequence[Path]) -> dict[str, str | None]:
    """Sinks of ``flow`` whose contract is one of ``spec_files``: sink name -> operation."""
    wanted = {path.resolve() for path in spec_files}
    found: dict[str, str | None] = {}
    for name, ref in flow.sinks.items():
        contract = contract_of(ref.config)
        if contract is not None and contract.file(flow.project_dir).resolve() in wanted:
            found[name] = contract.operation
    return found


def mark_usage(diff: SpecDiff, flows: Sequence[Flow], spec_files: Sequence[Path]) -> None:
    """Set ``used_by`` on each change that touches an operation or field a flow uses.

    A flow whose sink names this API in its ``contract:`` is matched on that operation only;
    other flows on every operation. Request fields are matched against the fields a flow's
    mappings write; response fields, for flows that poll the partner, against those they read
    (by dotted path, else by field name).
    """
    for flow in flows:
        operations = {op for op in flow_contracts(flow, spec_files).values() if op}
        usage = field_usage(flow)
        for change in diff.changes:
            if change.used_by is not None:
                continue
            if operations and change.operation not in operations:
                continue
            change.used_by = _touch(flow, change, usage.written, usage.read, bool(operations))


def _touch(
    flow: Flow,
    change: BreakingChange,
    written: dict[str, str],
    read: dict[str, str],
    by_contract: bool,
) -> str | None:
    if change.side == "operation":
        return f"{flow.name} (its sink contract)" if by_contract else None
    if change.field is None:
        return None
    if change.side == "request":
        tables = [written]
    elif flow.source.spec.name in RESPONSE_READERS:
        tables = [read]  # the flow consumes the partner's responses
    else:
        return None
    for table in tables:
        if change.field in table:
            return f"{flow.name}: {table[change.field]}"
    leaf = change.field.rsplit(".", 1)[-1]
    for table in tables:
        for used, place in table.items():
            if used.rsplit(".", 1)[-1] == leaf:
                return f"{flow.name}: {place} ({used})"
    return None
