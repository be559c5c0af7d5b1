"""The message envelope that carries a payload through a flow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dovetail.core.ack import Settlement
from dovetail.core.attempts import Attempt
from dovetail.core.ids import new_trace_id, uuid7
from dovetail.types import Headers, Payload


@dataclass(slots=True)
class Failure:
    """Why a message failed: the marks a failed message carries to retry or the DLQ."""

    step: str
    reason: str
    error_class: str
    permanent: bool
    detail: str | None = None
    retry_after: float | None = None


@dataclass(slots=True)
class SourcePosition:
    """Where a message came from, for the DLQ and trace (file and record, offset, request id)."""

    kind: str
    ref: str
    offset: int | None = None
    line: int | None = None

    def describe(self) -> str:
        """Human form, e.g. ``inbox/orders.csv:42`` or ``webhook:req-7``."""
        if self.line is not None:
            return f"{self.ref}:{self.line}"
        if self.offset is not None:
            return f"{self.ref}#{self.offset}"
        return self.ref

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "ref": self.ref, "offset": self.offset, "line": self.line}

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, kind: str) -> SourcePosition | None:
        """The position stored by ``as_dict`` (``None`` for none); ``kind`` when it has none."""
        if not raw:
            return None
        return cls(
            kind=str(raw.get("kind", kind)),
            ref=str(raw.get("ref", "")),
            offset=raw.get("offset"),
            line=raw.get("line"),
        )


@dataclass(slots=True)
class Envelope:
    """One message: payload plus identity, headers and the marks left by steps.

    ``settlement`` is shared by every message derived from the same source message (split,
    routing to several sinks); the source is acked when it reaches zero.
    """

    payload: Payload
    settlement: Settlement
    id: str = field(default_factory=uuid7)
    correlation_id: str = field(default_factory=new_trace_id)
    headers: Headers = field(default_factory=dict)
    position: SourcePosition | None = None
    attempt: int = 1
    original: Payload = None
    routes: tuple[str, ...] | None = None
    failure: Failure | None = None
    dead_letter_id: int | None = None
    parked_id: int | None = None
    outcome: str | None = None
    """How the runner settled this part: delivered, filtered, duplicate_skipped,
    dead_lettered or parked (set with its journal event)."""
    attempts: list[Attempt] = field(default_factory=list)
    """Attempts at a sink that did not settle this message (failed and retried in place, or
    recovered such as a renewed token), not yet written to the journal."""

    def derive(self, payload: Payload) -> Envelope:
        """A child message (split): same correlation id and source, its own id; shares the ack."""
        self.settlement.add(1)
        headers = dict(self.headers)
        key = headers.get("idempotency-key")
        if key is not None:
            # children of one parent get distinct, deterministic keys: parent key / child number
            headers["idempotency-key"] = f"{key}/{self.settlement.pending - 1}"
        return Envelope(
            payload=payload,
            settlement=self.settlement,
            correlation_id=self.correlation_id,
            headers=headers,
            position=self.position,
            attempt=self.attempt,
            original=self.original,
            routes=self.routes,
            dead_letter_id=self.dead_letter_id,
        )
