"""The journey of messages (``dovetail trace``), rebuilt from the journal.

A message is *received* when its id is made: the id is a UUIDv7 whose first 48 bits are the
creation time in Unix milliseconds, so no event is stored for it. Each journal event then
says what happened at a step or sink: ``attempt_failed`` (a failed attempt retried in place,
with its cause and the wait before the next one), ``token_renewed`` (a 401 answered by
renewing the credentials), ``filtered``, ``parked`` (a failed attempt, re-sent later),
``delivered`` (with its attempt), ``duplicate_skipped`` (the idempotency key was delivered
before) or ``dead_lettered`` (with the reason); ``replayed`` marks the moment ``dovetail
replay`` re-drove the message from its dead letter. Latency is an event's time minus the
creation time. Payloads are never part of a journey.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dovetail.store.base import JournalEvent

_UUID7 = re.compile(r"^([0-9a-f]{8})-([0-9a-f]{4})-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

_FINAL = {"delivered", "duplicate_skipped", "filtered", "dead_lettered", "parked"}


def created_at(message_id: str) -> datetime | None:
    """The creation time in a UUIDv7 message id; ``None`` for any other id."""
    match = _UUID7.match(message_id.lower())
    if match is None:
        return None
    millis = int(match.group(1) + match.group(2), 16)
    return datetime.fromtimestamp(millis / 1000, UTC)


@dataclass(slots=True)
class Stop:
    """One point of a message's journey."""

    at: datetime | None
    event: str
    step: str | None
    latency_ms: float | None
    """Milliseconds since the message was created (``None`` when its id has no time)."""
    attempt: int | None = None
    reason: str | None = None
    next_attempt_at: str | None = None
    position: str | None = None
    replay_of: int | None = None
    """The dead-letter id a replay re-drove (on the ``replayed`` stop and the replay's events)."""
    dead_letter: int | None = None
    """On ``dead_lettered``: the DLQ entry the failure was recorded in (``dovetail dlq show``)."""
    repeat: bool = False
    """On ``dead_lettered``: the failure repeated an open entry (same key, step and reason)."""
    retry_in: float | None = None
    """Seconds waited before the next attempt (``attempt_failed``)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": _iso(self.at),
            "event": self.event,
            "step": self.step,
            "latency_ms": self.latency_ms,
            "attempt": self.attempt,
            "reason": self.reason,
            "next_attempt_at": self.next_attempt_at,
            "retry_in": self.retry_in,
            "position": self.position,
            "replay_of": self.replay_of,
            "dead_letter": self.dead_letter,
            "repeat": self.repeat,
        }


@dataclass(slots=True)
class Journey:
    """Everything the journal knows about one message in one flow."""

    message_id: str
    correlation_id: str
    flow: str
    received_at: datetime | None
    stops: list[Stop] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        """``dead_lettered``, ``parked`` (a retry is pending), ``delivered``, ``filtered`` or
        ``duplicate_skipped``: the latest state at each sink, the worst of them winning.

        A replay supersedes the dead letters before it: after ``replayed`` (or any later
        settlement of a message dead-lettered at a step) only what happened next counts."""
        latest: dict[str, str] = {}
        for stop in self.stops:
            if stop.event == "replayed":
                latest = {k: v for k, v in latest.items() if v != "dead_lettered"}
                continue
            if stop.event not in _FINAL:
                continue
            if latest.get("*") == "dead_lettered":
                del latest["*"]  # settled again after a dead letter at a step: re-driven
            if stop.step is not None and stop.step.startswith("sink:"):
                latest[stop.step] = stop.event
            elif stop.event == "dead_lettered":
                latest["*"] = stop.event
            else:
                latest.pop("*", None)
                latest[stop.step or "*"] = stop.event
        for worst in ("dead_lettered", "parked", "delivered", "duplicate_skipped", "filtered"):
            if worst in latest.values():
                return worst
        return "received"

    @property
    def settled_ms(self) -> float | None:
        """Latency of the last event (the settlement when the message is settled)."""
        return self.stops[-1].latency_ms if len(self.stops) > 1 else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "correlation_id": self.correlation_id,
            "flow": self.flow,
            "received_at": _iso(self.received_at),
            "outcome": self.outcome,
            "latency_ms": self.settled_ms,
            "events": [stop.as_dict() for stop in self.stops],
        }


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat(timespec="milliseconds")


def _latency(at: datetime | None, created: datetime | None) -> float | None:
    if at is None or created is None:
        return None
    return round((at - created).total_seconds() * 1000, 3)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _attempt(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def journeys_of(events: list[JournalEvent]) -> list[Journey]:
    """Group journal events (already masked, oldest first) into one journey per message and
    flow, each starting with its ``received`` stop; ordered by when they were received."""
    found: dict[tuple[str, str], Journey] = {}
    for event in events:
        key = (event.flow, event.message_id)
        journey = found.get(key)
        if journey is None:
            created = created_at(event.message_id)
            journey = found[key] = Journey(
                message_id=event.message_id,
                correlation_id=event.correlation_id,
                flow=event.flow,
                received_at=created,
                stops=[Stop(at=created, event="received", step="source", latency_ms=0.0)],
            )
        detail = event.detail or {}
        received = journey.stops[0]
        if received.position is None and detail.get("position") is not None:
            received.position = str(detail["position"])  # where the message came from
        journey.stops.append(
            Stop(
                at=event.at,
                event=event.event,
                step=event.step,
                latency_ms=_latency(event.at, journey.received_at),
                attempt=_attempt(detail.get("attempt")),
                reason=_text(detail.get("reason", detail.get("cause"))),
                next_attempt_at=_text(detail.get("next_attempt_at")),
                position=_text(detail.get("position")),
                replay_of=_attempt(detail.get("replay_of")),
                dead_letter=_attempt(detail.get("dead_letter")),
                repeat=detail.get("repeat") is True,
                retry_in=_seconds(detail.get("retry_in")),
            )
        )
    far_future = datetime.max.replace(tzinfo=UTC)
    return sorted(
        found.values(),
        key=lambda j: j.received_at or (j.stops[1].at if len(j.stops) > 1 else None) or far_future,
    )
