"""``nats`` source: a durable JetStream pull consumer, acked only once each message is settled.

``open()`` creates or updates the durable consumer (explicit acks, ``ack_wait``,
``max_deliver``) and binds a pull subscription to it. ``run()`` fetches batches and emits one
envelope per message; a message is acked in its settlement callback, i.e. after it was
delivered to every sink, filtered out or durably dead-lettered. Until then an in-progress
signal is sent every third of ``ack_wait``, so slow deliveries and retries are not redelivered
to another consumer; if the process dies, JetStream redelivers the unacked messages after
``ack_wait``. Several processes on one durable share the messages (competing consumers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import anyio
import structlog
from pydantic import Field, field_validator

from dovetail.config.types import Duration
from dovetail.connectors.nats.connection import (
    NatsConnectionConfig,
    NatsUnavailable,
    check_name,
    close_client,
    connect,
    describe,
    redact,
    subject_problem,
)
from dovetail.connectors.payload_codec import TextFormat, read_body
from dovetail.core.ack import Settlement
from dovetail.core.component import BuildContext, Emit
from dovetail.core.envelope import Envelope, SourcePosition
from dovetail.core.ids import correlation_id_from_headers
from dovetail.core.steps import mark_failed
from dovetail.errors import PayloadRejected, PermanentError
from dovetail.plugins.spec import ComponentSpec
from dovetail.types import AckFn

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js.client import JetStreamContext

log = structlog.get_logger("dovetail.connectors.nats")


class NatsSourceConfig(NatsConnectionConfig):
    stream: str
    """The JetStream stream to consume."""
    subject: str
    """Subject filter of the consumer (`orders.>`, `orders.*.created`); use the stream's
    subject to take everything."""
    durable: str
    """Durable consumer name. It keeps the position across restarts; processes using the same
    name share the messages (competing consumers)."""
    batch_size: int | None = Field(default=None, ge=1, le=10_000)
    """Most messages fetched at once. Default: the flow's `runtime.batch_size`."""
    fetch_timeout: Duration = Field(default=5.0, gt=0)
    """How long one fetch waits for messages when none are pending."""
    ack_wait: Duration = Field(default=30.0, ge=0.5)
    """Time JetStream waits for an ack before redelivering a message. While a message is in
    flight an in-progress signal is sent every third of it, so only a stopped or unreachable
    process lets it run out."""
    max_deliver: int = Field(default=10, ge=2)
    """Most deliveries of one message. Its last delivery is dead-lettered without being
    processed (`delivered N times without being settled`), so a message that keeps
    crashing the process ends up in the dead-letter queue instead of stalling forever."""
    max_ack_pending: int = Field(default=1000, ge=1)
    """Most messages delivered but not yet acked, over all processes sharing the durable."""
    deliver_policy: Literal["all", "new"] = "all"
    """Where a new durable starts: `all` messages in the stream, or only `new` ones. It
    cannot be changed once the durable exists."""
    format: TextFormat = "json"
    """How bodies are parsed: `json`, or `text` (UTF-8)."""
    max_depth: int = Field(default=64, ge=1, le=512)
    """Deepest nesting accepted in a JSON body; deeper bodies are dead-lettered."""
    create_stream: bool = False
    """Create the stream (capturing `subject`) when it does not exist. For development and
    tests; production streams are usually managed with the `nats` CLI or infrastructure code."""

    @field_validator("stream")
    @classmethod
    def _check_stream(cls, value: str) -> str:
        return check_name(value, "stream")

    @field_validator("durable")
    @classmethod
    def _check_durable(cls, value: str) -> str:
        return check_name(value, "durable")

    @field_validator("subject")
    @classmethod
    def _check_subject(cls, value: str) -> str:
        problem = subject_problem(value, wildcards=True)
        if problem is not None:
            raise ValueError(problem)
        return value


class NatsSource:
    """Consumes a JetStream stream through a durable pull consumer; see the module docstring.

    In ``once`` mode ``run()`` returns when the consumer has no undelivered message left
    (messages delivered earlier to a process that died come back only after ``ack_wait``,
    to a later run).
    """

    name = "nats"

    def __init__(self, config: NatsSourceConfig, context: BuildContext) -> None:
        self.config = config
        self._flow = context.flow
        self._once = context.once
        self._batch_size = config.batch_size or max(1, int(context.options.get("batch_size", 100)))
        self._client: Client | None = None
        self._subscription: JetStreamContext.PullSubscription | None = None
        self._unsettled: dict[str, Msg] = {}

    async def open(self) -> None:
        """Connect, create the stream if asked, create or update the durable consumer.

        Raises ``NatsUnavailable`` when the server cannot be reached, the stream does not
        exist, or the existing durable cannot take the configured settings.
        """
        if self._client is not None:
            return
        self._client = await connect(self.config, name=f"dovetail:{self._flow}")
        try:
            js = self._client.jetstream()
            await self._ensure_stream(js)
            await self._ensure_consumer(js)
            self._subscription = await js.pull_subscribe_bind(
                durable=self.config.durable, stream=self.config.stream
            )
        except BaseException:
            await self.close()
            raise

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        from nats.js.errors import APIError, NotFoundError

        config = self.config
        try:
            await js.stream_info(config.stream)
            return
        except NotFoundError:
            if not config.create_stream:
                raise NatsUnavailable(
                    f"JetStream stream {config.stream!r} does not exist; create it"
                    " (`nats stream add`) or set `create_stream: true` for development"
                ) from None
        except APIError as exc:
            raise NatsUnavailable(f"stream {config.stream!r}: {describe(exc)}") from None
        try:
            await js.add_stream(name=config.stream, subjects=[config.subject])
        except APIError as exc:
            raise NatsUnavailable(
                f"cannot create stream {config.stream!r}: {describe(exc)}"
            ) from None
        log.info("stream created", flow=self._flow, stream=config.stream, subject=config.subject)

    async def _ensure_consumer(self, js: JetStreamContext) -> None:
        from nats.js import api
        from nats.js.errors import APIError

        config = self.config
        consumer = api.ConsumerConfig(
            durable_name=config.durable,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=config.ack_wait,
            max_deliver=config.max_deliver,
            max_ack_pending=config.max_ack_pending,
            filter_subject=config.subject,
            deliver_policy=api.DeliverPolicy(config.deliver_policy),
        )
        try:
            await js.add_consumer(config.stream, config=consumer)
        except APIError as exc:
            raise NatsUnavailable(
                f"cannot create or update durable consumer {config.durable!r} on stream"
                f" {config.stream!r}: {describe(exc)} (a setting that cannot change needs a"
                " new durable name, or `nats consumer rm` first)"
            ) from None

    async def run(self, emit: Emit) -> None:
        """Fetch and emit batches until cancelled (``once``: until nothing is pending)."""
        if self._subscription is None:
            await self.open()
        async with anyio.create_task_group() as group:
            group.start_soon(self._keep_alive)
            await self._read(emit)
            group.cancel_scope.cancel()

    async def _read(self, emit: Emit) -> None:
        from nats.errors import ConnectionClosedError
        from nats.errors import Error as NatsError

        subscription = self._subscription
        assert subscription is not None
        while True:
            try:
                if self._once and (await subscription.consumer_info()).num_pending == 0:
                    return
                messages = await subscription.fetch(
                    self._batch_size, timeout=self.config.fetch_timeout
                )
            except TimeoutError:  # nats-py raises its own subclass, or asyncio's, when idle
                if self._once:
                    return
                continue
            except ConnectionClosedError:
                raise NatsUnavailable(
                    f"the connection to NATS at {redact(self.config.url)} closed"
                ) from None
            except NatsError as exc:
                log.warning("fetch failed; trying again", flow=self._flow, error=describe(exc))
                await anyio.sleep(1.0)
                continue
            batch = [self._envelope(message) for message in messages]
            if batch:
                await emit(batch)

    def _envelope(self, message: Msg) -> Envelope:
        metadata = message.metadata
        headers = {key.lower(): value for key, value in (message.headers or {}).items()}
        payload, rejected = read_body(
            message.data, self.config.format, max_bytes=None, max_depth=self.config.max_depth
        )
        failure: PermanentError | None = rejected
        if rejected is None:
            delivered = metadata.num_delivered
            if delivered >= self.config.max_deliver:
                failure = PermanentError(
                    f"delivered {delivered} times without being settled (max_deliver"
                    f" {self.config.max_deliver}): earlier attempts ended without an ack"
                )
        # a body that cannot be read is terminated once dead-lettered: no delivery can fix it
        terminate = isinstance(failure, PayloadRejected)
        envelope = Envelope(
            payload=payload,
            settlement=Settlement(self._ack_for(message, terminate=terminate)),
            correlation_id=correlation_id_from_headers(headers),
            headers=headers,
            position=SourcePosition(
                kind="nats", ref=metadata.stream, offset=metadata.sequence.stream
            ),
            original=payload,
        )
        if failure is not None:
            mark_failed(envelope, "source", failure)
        if message.reply:
            self._unsettled[message.reply] = message
        return envelope

    def _ack_for(self, message: Msg, *, terminate: bool) -> AckFn:
        async def ack() -> None:
            from nats.errors import Error as NatsError

            self._unsettled.pop(message.reply, None)
            try:
                await (message.term() if terminate else message.ack())
            except NatsError as exc:  # not acked: JetStream redelivers, idempotency absorbs it
                log.warning(
                    "ack not sent; the message will be redelivered after ack_wait",
                    flow=self._flow,
                    stream=self.config.stream,
                    error=describe(exc),
                )

        return ack

    async def _keep_alive(self) -> None:
        """Tell JetStream that unsettled messages are still being worked on."""
        from nats.errors import Error as NatsError

        period = self.config.ack_wait / 3
        while True:
            await anyio.sleep(period)
            for message in list(self._unsettled.values()):
                try:
                    await message.in_progress()
                except NatsError:
                    break  # connection trouble: the next round tries again

    async def commit(self) -> None:
        """Nothing to persist: each message is acked by its settlement."""

    async def close(self) -> None:
        """Flush the acks already sent, then close the connection."""
        client, self._client = self._client, None
        self._subscription = None
        self._unsettled.clear()
        if client is None:
            return
        await close_client(client)


SPEC = ComponentSpec(
    kind="source",
    name="nats",
    config=NatsSourceConfig,
    factory=lambda config, context: NatsSource(config, context),
    summary="Consume a NATS JetStream stream through a durable pull consumer.",
    description=(
        "Creates (or updates) the durable pull consumer `durable` on `stream`, filtered by"
        " `subject`, and emits one message per JetStream message. Each message is acked only"
        " after it is settled: delivered to every sink, filtered out, or dead-lettered. If the"
        " process stops before that, JetStream redelivers the message after `ack_wait`; while"
        " a message is still being worked on (slow sink, retries) an in-progress signal keeps"
        " it from being redelivered. Declare an idempotency key so a redelivery after a crash"
        " is not delivered twice.\n\n"
        "Several processes using the same `durable` share the stream's messages (competing"
        " consumers); each message goes to one of them.\n\n"
        "A body that does not parse (`format: json`) is dead-lettered with its raw text and"
        " the reason, then terminated, so it is never redelivered. A message delivered"
        " `max_deliver` times without ever being settled (it crashed the process each time)"
        " is dead-lettered on its last delivery. Message headers become the message's"
        " headers (lower-case); the correlation id comes from `traceparent` or"
        " `x-correlation-id`.\n\n"
        "With `dovetail run --once` the source returns when the consumer has no undelivered"
        " message left."
    ),
    examples=[
        "nats:\n  url: nats://127.0.0.1:4222\n  stream: ORDERS\n  subject: orders.>\n"
        "  durable: orders-to-erp",
        "nats:\n  url: ${env:NATS_URL}\n  user: dovetail\n  password: ${secret:NATS_PASSWORD}\n"
        "  stream: SHIPMENTS\n  subject: shipments.*.created\n  durable: shipments\n"
        "  ack_wait: 2m\n  max_deliver: 5",
    ],
    status="beta",
    extra="nats",
    modules=("nats",),
)
