"""Turning failed envelopes into dead-letter records."""

from __future__ import annotations

from dovetail.core.envelope import Envelope
from dovetail.observability.masking import DEFAULT_POLICY, MaskPolicy
from dovetail.store.base import DeadLetter
from dovetail.store.codec import storable_text


def dead_letter_from(
    envelope: Envelope, flow: str, flow_version: str, policy: MaskPolicy = DEFAULT_POLICY
) -> DeadLetter:
    """The DLQ record of a failed envelope: its original input, the failure marks and origin.

    The stored payload is the message as the source produced it, so a replay runs it through
    the flow's current version from the first step; views mask it when they show it. The
    reason and detail are free text that may quote the payload (an exception message, a
    partner's answer), so they are masked with the flow's ``policy`` before they are stored,
    and characters no store keeps (NUL, lone surrogates) become U+FFFD.
    A replayed message keeps its DLQ id and is updated in place, with the new failure
    appended to its history.
    """
    failure = envelope.failure
    if failure is None:
        raise ValueError("envelope has no failure to dead-letter")
    payload = envelope.original if envelope.original is not None else envelope.payload
    return DeadLetter(
        id=envelope.dead_letter_id,
        flow=flow,
        flow_version=flow_version,
        message_id=envelope.id,
        correlation_id=envelope.correlation_id,
        step=failure.step,
        reason=storable_text(policy.text(failure.reason, payload=payload)),
        error_class=failure.error_class,
        attempt=envelope.attempt,
        payload=payload,
        headers=dict(envelope.headers),
        source_position=None if envelope.position is None else envelope.position.as_dict(),
        detail=None
        if failure.detail is None
        else storable_text(policy.text(failure.detail, payload=payload)),
    )
