"""What a sink delivery reports: the result of carrying a batch to one sink.

These types belong to the core so that everyone who reads them (the runner, the flow
observers in ``observability/``) depends on the core, not on ``delivery/`` that produces them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from dovetail.core.envelope import Envelope


@dataclass(slots=True)
class Parked:
    """An envelope to park at a sink until ``due``."""

    envelope: Envelope
    due: datetime


@dataclass(slots=True)
class DeliveryResult:
    """What happened to a batch at one sink.

    ``delivered`` were confirmed by the sink (their idempotency keys are recorded as each was
    confirmed), ``duplicates`` were recognised as already delivered, ``failed`` failed for good
    (each carries its ``failure``), ``parked`` wait in the store for a later attempt.
    """

    delivered: list[Envelope] = field(default_factory=list)
    duplicates: list[Envelope] = field(default_factory=list)
    failed: list[Envelope] = field(default_factory=list)
    parked: list[Parked] = field(default_factory=list)
    """Messages whose next wait is long: parked in the store until their due time."""
    retries: int = 0
    seconds: float = 0.0
