"""Run flows offline: captured sinks, a throw-away store, a fake clock (no real waiting).

With a ``PartnerServer``, the flow's http sinks send to that local partner instead of being
captured (see ``dovetail.testing.partner_run``); what it accepted is reported per sink.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from dovetail.api import run_flow_async
from dovetail.config.model import Flow
from dovetail.contracts.validate import ContractValidator, contract_of
from dovetail.core.component import BuildContext, Source
from dovetail.delivery.clock import FakeClock
from dovetail.runtime.runner import RunSummary
from dovetail.store.base import DeadLetter, DeadLetterQuery
from dovetail.store.sqlite import SqliteStore
from dovetail.testing.cases import FlowCase
from dovetail.testing.expectations import CaseOutcome, evaluate
from dovetail.testing.fakes import CaptureSink, ListSource
from dovetail.testing.partner import PartnerServer
from dovetail.testing.partner_run import (
    PartnerStats,
    Role,
    load_for_partner,
    partner_for,
    partner_stats,
    script_partner,
    sink_path,
    start_partner,
    stop_partner,
)


@dataclass
class OfflineRun:
    """The outcome of an offline run: what each sink received and what was dead-lettered."""

    summary: RunSummary
    delivered: dict[str, list[Any]]
    """Per sink, the payloads captured, or those the partner accepted for a partner-bound sink."""
    dead_letters: list[DeadLetter]
    partner: PartnerStats | None = None
    """What the partner saw, when the run had one."""


@dataclass
class CaseResult:
    """A test case's verdict with the reasons it failed, if it did."""

    case: FlowCase
    passed: bool
    failures: list[str] = field(default_factory=list)
    run: OfflineRun | None = None
    seconds: float = 0.0
    flow_version: str = ""
    updated: list[Path] = field(default_factory=list)
    """Golden files rewritten for this case (``dovetail test --update``)."""


def _file_source(flow: Flow, input_file: Path, store: SqliteStore) -> Source:
    """The flow's own file source, pointed at ``input_file`` and leaving it where it is."""
    ref = flow.source
    relative = str(input_file.resolve().relative_to(flow.project_dir.resolve()))
    updates: dict[str, Any] = {"path": relative}
    if "after" in type(ref.config).model_fields:
        updates["after"] = None
    config = ref.config.model_copy(update=updates)
    context = BuildContext(
        flow=flow.name,
        flow_version=flow.version,
        project_dir=flow.project_dir,
        store=store,
        once=True,
        options={"batch_size": flow.spec.runtime.batch_size},
    )
    source: Source = ref.spec.factory(config, context)
    return source


async def run_offline(
    flow: Flow,
    *,
    messages: list[Any] | None = None,
    input_file: Path | None = None,
    partner: PartnerServer | None = None,
    partner_env: dict[str, Role] | None = None,
) -> OfflineRun:
    """Push ``messages`` (or a file through the flow's own source) with every sink captured.

    With a started ``partner``, the flow is loaded again with its http sinks pointed at it
    (``partner_env``: the variables to set, default detected) and those sinks really send;
    ``delivered`` then holds, for each of them, the bodies the partner accepted on its path.
    """
    bound: list[str] = []
    if partner is not None:
        flow, bound = load_for_partner(flow, partner, partner_env)
    captured = {name: CaptureSink(name) for name in flow.sinks if name not in bound}
    with tempfile.TemporaryDirectory(prefix="dovetail-test-") as tmp:
        store = SqliteStore(Path(tmp) / "state.db")
        await store.open()
        try:
            source: Source
            if input_file is not None:
                source = _file_source(flow, input_file, store)
            else:
                source = ListSource(messages or [], batch_size=flow.spec.runtime.batch_size)
            summary = await run_flow_async(
                flow, store=store, once=True, source=source, sinks=dict(captured), clock=FakeClock()
            )
            letters = await store.dead_letters(DeadLetterQuery(flow=flow.name, status=None))
        finally:
            await store.close()
    delivered: dict[str, list[Any]] = {}
    for name in flow.sinks:
        if name in captured:
            delivered[name] = captured[name].received
        elif partner is not None:
            delivered[name] = partner.received_bodies(sink_path(flow, name))
    return OfflineRun(
        summary=summary,
        delivered=delivered,
        dead_letters=letters,
        partner=partner_stats(partner, bound) if partner is not None else None,
    )


def _normal(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value, default=str))


async def _run_case_input(flow: Flow, case: FlowCase, partner: PartnerServer | None) -> OfflineRun:
    spec = case.spec
    env = spec.partner.env if spec.partner is not None else None
    if spec.input.file is not None:
        path = case.path.parent / spec.input.file
        return await run_offline(flow, input_file=path, partner=partner, partner_env=env)
    items = spec.input.messages if spec.input.messages is not None else [spec.input.message]
    return await run_offline(flow, messages=list(items), partner=partner, partner_env=env)


async def run_case(flow: Flow, case: FlowCase, *, update_golden: bool = False) -> CaseResult:
    """Run one case and compare what came out with what it expects.

    A case with ``partner:`` runs against a local ``PartnerServer`` started for it (scripted
    answers and faults as declared). ``update_golden`` rewrites the case's golden file when it
    differs (named in ``CaseResult.updated``) instead of failing.
    """
    partner: PartnerServer | None = None
    if case.spec.partner is not None:
        partner = partner_for(flow, case.spec.partner)
        await start_partner(partner)
        script_partner(partner, case.spec.partner)
    try:
        run = await _run_case_input(flow, case, partner)
    finally:
        if partner is not None:
            await stop_partner(partner)
    outcome = CaseOutcome(
        flow=flow,
        case=case,
        summary=run.summary,
        delivered=run.delivered,
        dead_letters=run.dead_letters,
        partner=run.partner,
        update_golden=update_golden,
    )
    failures = evaluate(outcome)
    if run.partner is not None and not run.partner.sinks:
        failures.append("no http sink of the flow points at the partner (see partner.env)")
    failures.extend(contract_failures(flow, run.delivered))
    return CaseResult(
        case=case,
        passed=not failures,
        failures=failures,
        run=run,
        seconds=run.summary.seconds,
        flow_version=flow.version,
        updated=outcome.updated,
    )


def contract_failures(flow: Flow, delivered: dict[str, list[Any]]) -> list[str]:
    """Every delivered payload checked against its sink's ``contract:``, if it has one."""
    failures: list[str] = []
    for name, payloads in delivered.items():
        ref = flow.sinks.get(name)
        contract = contract_of(ref.config) if ref is not None else None
        if contract is None or not payloads:
            continue
        validator = ContractValidator(contract, flow.project_dir)
        for index, payload in enumerate(payloads):
            found = validator.violations(_normal(payload))
            if found:
                failures.append(f"{name}[{index}]: {validator.reason(found)}")
    return failures
