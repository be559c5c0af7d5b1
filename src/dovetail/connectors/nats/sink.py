"""``nats`` sink: publish to JetStream, confirmed only by the stream's PubAck.

Each message is published with ``Nats-Msg-Id`` set to its idempotency key, so JetStream
drops a repeat within the stream's duplicate window (a redelivery after a crash, a retry
after a lost PubAck). The subject is fixed or computed per message by a JSONata expression.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import anyio
from pydantic import Field, field_validator, model_validator

from dovetail.config.fields import JsonataExpr
from dovetail.config.types import Duration
from dovetail.connectors.nats.connection import (
    NatsConnectionConfig,
    check_name,
    close_client,
    connect,
    subject_problem,
    translate_error,
)
from dovetail.connectors.payload_codec import TextFormat, encode_payload
from dovetail.core.component import BuildContext
from dovetail.core.envelope import Envelope
from dovetail.core.ids import make_traceparent
from dovetail.errors import MessageError, PermanentError
from dovetail.mapping.jsonata import Expression, compile_expression
from dovetail.plugins.spec import ComponentSpec

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js.client import JetStreamContext

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_RESERVED_PREFIXES = ("$", "_INBOX.")


class NatsSinkConfig(NatsConnectionConfig):
    subject: str | None = None
    """The subject every message is published to (`orders.created`)."""
    subject_from: JsonataExpr | None = None
    """Instead of `subject`: JSONata over the payload giving each message's subject, e.g.
    `'orders.' & $lowercase(country)`. System subjects (`$JS...`, `_INBOX...`) are refused."""
    stream: str | None = None
    """When set, the PubAck must come from this stream; a subject that lands in another
    stream is refused (dead-lettered)."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra headers on every message."""
    format: TextFormat = "json"
    """How the payload is written: `json`, or `text` (a string payload as UTF-8)."""
    timeout: Duration = Field(default=5.0, gt=0)
    """Time allowed for the PubAck of one message."""
    concurrency: int = Field(default=64, ge=1, le=4096)
    """Most publishes waiting for their PubAck at once."""

    @field_validator("subject")
    @classmethod
    def _check_subject(cls, value: str | None) -> str | None:
        if value is not None:
            problem = subject_problem(value, wildcards=False)
            if problem is not None:
                raise ValueError(problem)
        return value

    @field_validator("stream")
    @classmethod
    def _check_stream(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, "stream")

    @model_validator(mode="after")
    def _one_subject(self) -> NatsSinkConfig:
        if (self.subject is None) == (self.subject_from is None):
            raise ValueError("give exactly one of `subject` (fixed) or `subject_from` (JSONata)")
        return self


class NatsSink:
    """Publishes each message to JetStream and waits for its PubAck.

    ``write`` never raises for a message: per message it returns ``None`` once the stream
    acknowledged it (a ``duplicate`` PubAck counts: the stream already has it), or the
    translated failure: no PubAck in time, no stream for the subject, connection loss and
    server 5xx are transient; an unusable subject, a payload that cannot be encoded or is
    over the server's limit, and other refusals are permanent.
    """

    name = "nats"

    def __init__(self, config: NatsSinkConfig, context: BuildContext) -> None:
        self.config = config
        self._flow = context.flow
        self._subject_from: Expression | None = (
            compile_expression(config.subject_from) if config.subject_from is not None else None
        )
        self._limiter = anyio.CapacityLimiter(config.concurrency)
        self._client: Client | None = None
        self._js: JetStreamContext | None = None

    async def open(self) -> None:
        """Connect to NATS. Raises ``NatsUnavailable`` when no server can be reached."""
        if self._client is None:
            self._client = await connect(self.config, name=f"dovetail:{self._flow}:sink")
            self._js = self._client.jetstream()

    async def close(self) -> None:
        """Flush and close the connection."""
        client, self._client, self._js = self._client, None, None
        if client is not None:
            await close_client(client)

    async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
        """Publish every message of ``batch``; per message ``None`` or its failure."""
        if self._js is None:
            await self.open()
        results: list[BaseException | None] = [None] * len(batch)

        async def publish(index: int, envelope: Envelope) -> None:
            async with self._limiter:
                results[index] = await self._publish(envelope)

        async with anyio.create_task_group() as group:
            for index, envelope in enumerate(batch):
                group.start_soon(publish, index, envelope)
        return results

    def subject_for(self, payload: Any) -> str:
        """The subject of a message with ``payload``; raises ``PermanentError`` when the
        expression gives no usable subject."""
        if self._subject_from is None:
            assert self.config.subject is not None
            return self.config.subject
        value = self._subject_from.evaluate(payload)
        if isinstance(value, bool) or not isinstance(value, str | int):
            kind = "nothing" if value is None else type(value).__name__
            raise PermanentError(
                f"subject_from {self._subject_from.source!r} gave {kind}, not a subject"
            )
        subject = str(value)
        problem = subject_problem(subject, wildcards=False)
        if problem is None and subject.startswith(_RESERVED_PREFIXES):
            problem = f"subject {subject!r} is a system subject"
        if problem is not None:
            raise PermanentError(f"subject_from {self._subject_from.source!r}: {problem}")
        return subject

    def headers_for(self, envelope: Envelope) -> dict[str, str]:
        """Headers of the published message: the configured ones, trace context, and
        ``Nats-Msg-Id`` from the idempotency key when there is one."""
        headers = dict(self.config.headers)
        headers["Content-Type"] = (
            "application/json" if self.config.format == "json" else "text/plain; charset=utf-8"
        )
        correlation_id = envelope.correlation_id
        if correlation_id:
            headers["x-correlation-id"] = header_safe(correlation_id)
        if _TRACE_ID.match(correlation_id) and correlation_id != "0" * 32:
            headers["traceparent"] = make_traceparent(correlation_id)
        key = envelope.headers.get("idempotency-key")
        if key:
            headers["Nats-Msg-Id"] = header_safe(key)
        return headers

    async def _publish(self, envelope: Envelope) -> MessageError | None:
        from nats.errors import Error as NatsError

        assert self._js is not None
        try:
            subject = self.subject_for(envelope.payload)
            body = encode_payload(envelope.payload, self.config.format)
        except MessageError as exc:
            return exc
        try:
            await self._js.publish(
                subject,
                body,
                timeout=self.config.timeout,
                stream=self.config.stream,
                headers=self.headers_for(envelope),
            )
        except (NatsError, TimeoutError) as exc:
            return translate_error(exc, subject)
        return None


def header_safe(value: str) -> str:
    """A header value NATS can carry: visible ASCII kept, anything else percent-encoded
    (deterministically, so a retried publish carries the same ``Nats-Msg-Id``)."""
    return value if value.isascii() and value.isprintable() else quote(value, safe="")


SPEC = ComponentSpec(
    kind="sink",
    name="nats",
    config=NatsSinkConfig,
    factory=lambda config, context: NatsSink(config, context),
    summary="Publish each message to NATS JetStream, confirmed by the stream's PubAck.",
    description=(
        "Publishes the payload (JSON, or text) to `subject`, or to the subject `subject_from`"
        " computes from the payload, and counts a message as delivered only when the stream"
        " answers with its PubAck. Up to `concurrency` publishes wait for their PubAck at"
        " once.\n\n"
        "When the flow declares an idempotency key it is sent as `Nats-Msg-Id`: the stream"
        " stores a message published twice with the same key within its duplicate window"
        " (2 minutes unless the stream says otherwise) only once, so a retry after a lost"
        " PubAck or a redelivery after a crash does not duplicate it. Headers carry"
        " `traceparent` and `x-correlation-id`.\n\n"
        "Outcomes: no PubAck within `timeout`, no stream for the subject (no responders), a"
        " lost connection or a server error are retried; a subject that is not usable, a"
        " payload over the server's `max_payload`, a PubAck from another stream than `stream`"
        " and other refusals are dead-lettered."
    ),
    examples=[
        "nats: {url: 'nats://127.0.0.1:4222', subject: orders.accepted}",
        "nats:\n  url: ${env:NATS_URL}\n  subject_from: \"'shipments.' & $lowercase(country)\"\n"
        "  stream: SHIPMENTS\n  timeout: 10s",
    ],
    status="beta",
    extra="nats",
    modules=("nats",),
)
