"""``dovetail dlq`` and ``dovetail replay``: inspect, discard and re-drive dead letters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dovetail.config.loader import Project, load_flow
from dovetail.observability.masking import DEFAULT_POLICY, MaskPolicy
from dovetail.store.base import DeadLetter, ParkedMessage


def mask_for(project: Project) -> dict[str, MaskPolicy]:
    """The masking policy per flow name.

    Flows that fail to load get no declared paths but every detector (the default policy).
    """
    masks: dict[str, MaskPolicy] = {}
    for path in project.flow_paths():
        try:
            flow = load_flow(path, project, strict=False)
        except Exception:
            continue
        masks[flow.name] = MaskPolicy.of_spec(flow.spec.observability)
    return masks


def letter_view(letter: DeadLetter, mask: MaskPolicy | list[str], *, full: bool) -> dict[str, Any]:
    """A dead letter as shown to people: payload, reason, detail and history masked.

    Every view carries the idempotency key, the source position (``file:line``, ``ref#offset``
    or the source's reference) and ``repeats``: later messages with the same key that failed
    the same way while the entry was open.

    ``mask`` is the flow's policy (a list of paths means those paths and every detector).
    """
    policy = mask if isinstance(mask, MaskPolicy) else MaskPolicy.of(mask)
    view: dict[str, Any] = {
        "id": letter.id,
        "flow": letter.flow,
        "flow_version": letter.flow_version,
        "status": letter.status,
        "step": letter.step,
        "reason": policy.text(letter.reason, payload=letter.payload),
        "error_class": letter.error_class,
        "attempt": letter.attempt,
        "first_failed_at": _iso(letter.first_failed_at),
        "last_failed_at": _iso(letter.last_failed_at),
        "correlation_id": letter.correlation_id,
        "message_id": letter.message_id,
        "idempotency_key": (
            policy.text(letter.idempotency_key) if letter.idempotency_key is not None else None
        ),
        "source_position": _position(letter.source_position),
        "repeats": letter.repeats,
    }
    if full:
        view["payload"] = policy.payload(letter.payload)
        view["detail"] = (
            None if letter.detail is None else policy.text(letter.detail, payload=letter.payload)
        )
        view["history"] = policy.payload(letter.history)
    return view


def parked_view(message: ParkedMessage, policy: MaskPolicy = DEFAULT_POLICY) -> dict[str, Any]:
    """A parked message as shown to people (no payload: it waits to be sent as it is)."""
    return {
        "id": message.id,
        "flow": message.flow,
        "sink": message.sink,
        "reason": policy.text(message.reason),
        "error_class": message.error_class,
        "attempt": message.attempt,
        "next_attempt_at": _iso(message.next_attempt_at),
        "first_failed_at": _iso(message.first_failed_at),
        "ordering_key": policy.text(message.ordering_key) if message.ordering_key else None,
        "idempotency_key": (
            policy.text(message.idempotency_key) if message.idempotency_key else None
        ),
        "correlation_id": message.correlation_id,
        "message_id": message.message_id,
        "dead_letter_id": message.dead_letter_id,
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


def _position(raw: dict[str, Any] | None) -> str | None:
    if not raw:
        return None
    ref = raw.get("ref", "")
    if raw.get("line") is not None:
        return f"{ref}:{raw['line']}"
    if raw.get("offset") is not None:
        return f"{ref}#{raw['offset']}"
    return str(ref)


def parse_time(value: str | None) -> datetime | None:
    """ISO-8601 date or date-time; naive values are taken as UTC."""
    if value is None:
        return None
    from datetime import UTC

    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
