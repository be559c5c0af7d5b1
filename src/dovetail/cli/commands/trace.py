"""``dovetail trace ID``: the journey of a message, by message id, correlation id or business
key (its idempotency key or a value of a flow's ``observability.trace_keys``).

Given a message id, the trace follows that message's correlation id too, so a message handed
from one flow to another (a broker or the ``flow`` sink between them) is shown in every flow.
Exit codes: 0 found; 1 the store could not be opened or holds nothing for the id.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
import typer

from dovetail.api import open_store
from dovetail.cli import exit_codes
from dovetail.cli.commands.dlq import mask_for
from dovetail.cli.commands.project import current_project
from dovetail.cli.render import console, fail, print_json, table
from dovetail.config.loader import Project
from dovetail.errors import DovetailError
from dovetail.observability.journey import Journey, Stop, journeys_of
from dovetail.observability.masking import DEFAULT_POLICY
from dovetail.store.base import JournalEvent, Store

MAX_KEYED_MESSAGES = 100
"""Most messages a business key brings into one trace (the oldest first)."""


async def journal_of(store: Store, ident: str) -> list[JournalEvent]:
    """The events of ``ident`` (a message or correlation id), with those of every message
    sharing the correlation id of a message asked for by its id; oldest first."""
    events = await store.journal_for(ident)
    correlations = sorted({e.correlation_id for e in events} - {ident})
    if not correlations or any(e.correlation_id == ident for e in events):
        return events
    seen: set[tuple[Any, ...]] = set()
    merged: list[JournalEvent] = []
    for correlation in correlations:
        for event in [*events, *await store.journal_for(correlation)]:
            key = (event.message_id, event.flow, event.event, event.step, event.at)
            if key not in seen:
                seen.add(key)
                merged.append(event)
    merged.sort(key=lambda e: (e.at is None, e.at))
    return merged


async def find_journal(store: Store, ident: str) -> list[JournalEvent]:
    """The events of ``ident`` as a message or correlation id (``journal_of``) and of every
    message recorded with ``ident`` as a business key; oldest first, each event once."""
    events = await journal_of(store, ident)
    keyed = await store.messages_with_key(ident, MAX_KEYED_MESSAGES)
    if not keyed:
        return events
    seen = {(e.message_id, e.flow, e.event, e.step, e.at) for e in events}
    for message_id in keyed:
        for event in await journal_of(store, message_id):
            key = (event.message_id, event.flow, event.event, event.step, event.at)
            if key not in seen:
                seen.add(key)
                events.append(event)
    events.sort(key=lambda e: (e.at is None, e.at))
    return events


def _masked(project: Project, events: list[JournalEvent]) -> list[JournalEvent]:
    policies = mask_for(project)
    for event in events:
        if event.detail is not None:
            event.detail = policies.get(event.flow, DEFAULT_POLICY).payload(event.detail)
    return events


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 10_000:
        return f"{value / 1000:.1f} s"
    return f"{value:.0f} ms"


def _what(stop: Stop) -> str:
    if stop.event == "received":
        return f"from {stop.position}" if stop.position else ""
    if stop.event == "replayed":
        return f"dead letter #{stop.replay_of} re-driven by dovetail replay"
    if stop.event == "dead_lettered" and stop.dead_letter is not None:
        entry = f"repeat of dead letter #{stop.dead_letter}" if stop.repeat else "dead letter"
        if not stop.repeat:
            entry += f" #{stop.dead_letter}"
        return f"{stop.reason or ''} ({entry})".lstrip()
    if stop.event == "parked" and stop.next_attempt_at:
        return f"next attempt {stop.next_attempt_at}: {stop.reason or ''}".rstrip(": ")
    if stop.event == "attempt_failed" and stop.retry_in is not None:
        return f"{stop.reason or 'failed'}; next attempt in {stop.retry_in:g}s"
    return stop.reason or ""


def _clock(stop: Stop) -> str:
    return "" if stop.at is None else stop.at.strftime("%H:%M:%S.%f")[:-3]


def _print(journeys: list[Journey]) -> None:
    """One table of every stop (times UTC), then one line per message with its full id."""
    rows: list[list[Any]] = []
    for number, journey in enumerate(journeys, start=1):
        for index, stop in enumerate(journey.stops):
            rows.append(
                [
                    f"#{number}" if index == 0 else "",
                    journey.flow if index == 0 else "",
                    _clock(stop),
                    _ms(stop.latency_ms),
                    stop.event,
                    stop.step or "",
                    "" if stop.attempt is None else stop.attempt,
                    _what(stop),
                ]
            )
    table(None, ["#", "flow", "at (UTC)", "+latency", "event", "step", "attempt", "detail"], rows)
    flows = {j.flow for j in journeys}
    correlations = sorted({j.correlation_id for j in journeys})
    console.print(
        f"{len(journeys)} message(s) in {len(flows)} flow(s); correlation id"
        f" {', '.join(correlations)}"
    )
    for number, journey in enumerate(journeys, start=1):
        received = journey.received_at
        when = (
            "" if received is None else f" received {received.isoformat(timespec='milliseconds')},"
        )
        console.print(
            f"  #{number} {journey.flow} {journey.message_id}:{when}"
            f" {journey.outcome.replace('_', '-')} after {_ms(journey.settled_ms)}"
        )


def trace(
    ident: Annotated[
        str,
        typer.Argument(
            help="Message id, correlation id or business key (idempotency key, trace_keys value)."
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The journey of a message: received, each step and sink, retries, delivery or dead letter,
    replays, with the latency of each event; across flows sharing its correlation id. Find it
    by message id, correlation id or a business key (ORD-00257)."""
    project = current_project()

    async def load() -> list[JournalEvent]:
        store = await open_store(project)
        try:
            return await find_journal(store, ident)
        finally:
            await store.close()

    try:
        events = anyio.run(load)
    except DovetailError as exc:
        fail(str(exc))
        raise typer.Exit(exit_codes.RUNTIME_FAILURE) from None
    journeys = journeys_of(_masked(project, events))
    if as_json:
        print_json({"id": ident, "messages": [j.as_dict() for j in journeys]})
    elif journeys:
        _print(journeys)
    if not journeys:
        if not as_json:
            fail(
                f"no journal events for {ident!r} (a message id, a correlation id, an"
                " idempotency key or a value of a flow's observability.trace_keys)"
            )
        raise typer.Exit(exit_codes.RUNTIME_FAILURE)
