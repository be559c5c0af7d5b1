"""``amqp`` source: consume a RabbitMQ queue and acknowledge each message after it is settled.

Ack contract: a message is acknowledged to the broker (``basic.ack``) in its settlement's ack
callback, i.e. only once it is delivered to every sink, filtered out, or durably
dead-lettered. Until then it is unacknowledged: when the process stops or dies, or the
connection drops, the broker delivers it again (to this or another consumer). A message
whose body cannot be read is dead-lettered with the reason and then acknowledged, so it is
never redelivered in a loop.

Without ``once``, one consumer with ``prefetch`` QoS feeds batches of up to ``batch_size``
messages (waiting at most ``batch_timeout`` for a batch to fill); a lost connection is
re-opened with backoff. With ``once``, the messages ready in the queue are fetched with
``basic.get`` until it is empty, then ``run`` returns.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from dovetail.connectors.amqp.codec import headers_from_amqp
from dovetail.connectors.amqp.config import AmqpSourceConfig, describe_url
from dovetail.connectors.amqp.connection import classify_error, import_aio_pika, open_connection
from dovetail.connectors.payload_codec import read_body
from dovetail.core.ack import Settlement
from dovetail.core.component import BuildContext, Emit
from dovetail.core.envelope import Envelope, SourcePosition
from dovetail.core.ids import correlation_id_from_headers
from dovetail.core.steps import mark_failed
from dovetail.errors import PermanentError, TransientError
from dovetail.plugins.spec import ComponentSpec
from dovetail.types import AckFn

if TYPE_CHECKING:
    from aio_pika.abc import (
        AbstractChannel,
        AbstractConnection,
        AbstractIncomingMessage,
        AbstractQueue,
    )

log = structlog.get_logger("dovetail.connectors.amqp")
MAX_RECONNECT_DELAY = 30.0


class _ConnectionLost(Exception):
    """Pushed into the buffer when the channel or connection closes."""


class AmqpSource:
    """Consumes ``config.queue``; see the module docstring for the ack contract."""

    name = "amqp"

    def __init__(self, config: AmqpSourceConfig, context: BuildContext) -> None:
        self.config = config
        self._flow = context.flow
        self._once = context.once
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._buffer: asyncio.Queue[AbstractIncomingMessage | _ConnectionLost] = asyncio.Queue()
        self.acked = 0
        """Messages acknowledged to the broker so far."""

    async def open(self) -> None:
        """Connect, set QoS and declare or check the queue (and its bindings).

        Raises ``PermanentError`` when the queue does not exist (and ``declare`` is off) or a
        declaration conflicts with the existing queue; ``TransientError`` when the broker
        cannot be reached or refuses the login.
        """
        import_aio_pika()
        if self._channel is None:
            await self._connect()

    async def run(self, emit: Emit) -> None:
        """Emit batches until cancelled (``once``: until the queue is empty)."""
        if self._once:
            await self._drain(emit)
            return
        delay = self.config.reconnect_delay
        while True:
            try:
                if self._channel is None:
                    await self._connect()
                    delay = self.config.reconnect_delay
                await self._consume(emit)
            except TransientError as exc:
                log.warning(
                    "amqp connection lost; reconnecting",
                    flow=self._flow,
                    queue=self.config.queue,
                    error=exc.reason,
                    delay=delay,
                )
                await self._disconnect()
                await anyio.sleep(delay)
                delay = min(max(delay, 0.1) * 2, MAX_RECONNECT_DELAY)
            else:  # pragma: no cover - _consume only ends by raising
                return

    async def commit(self) -> None:
        """Nothing to persist: each message was acknowledged by its settlement."""

    async def close(self) -> None:
        """Close the connection; the broker redelivers every message not acknowledged yet."""
        await self._disconnect()

    # -- connection --------------------------------------------------------------------------

    async def _connect(self) -> None:
        config = self.config
        connection = await open_connection(config, name=f"dovetail {self._flow} (source)")
        try:
            channel = await connection.channel(publisher_confirms=False)
            await channel.set_qos(prefetch_count=config.prefetch)
            queue = await self._declare(channel)
        except BaseException as exc:
            await _close_quietly(connection)
            if isinstance(exc, Exception):
                raise classify_error(exc, f"preparing queue {config.queue!r}") from None
            raise
        self._connection, self._channel, self._queue = connection, channel, queue
        buffer: asyncio.Queue[AbstractIncomingMessage | _ConnectionLost] = asyncio.Queue()
        self._buffer = buffer

        def closed(sender: object, error: BaseException | None = None) -> None:
            # bound to this connection's buffer: a late callback cannot disturb the next one
            buffer.put_nowait(_ConnectionLost(str(error) if error else "closed"))

        channel.close_callbacks.add(closed)
        connection.close_callbacks.add(closed)
        log.info(
            "amqp source connected",
            flow=self._flow,
            queue=config.queue,
            broker=describe_url(config.url),
            prefetch=config.prefetch,
        )

    async def _declare(self, channel: AbstractChannel) -> AbstractQueue:
        config = self.config
        if not config.declare:
            try:
                queue = await channel.declare_queue(config.queue, passive=True)
            except Exception as exc:
                error = classify_error(exc, f"checking queue {config.queue!r}")
                if "NOT_FOUND" in error.reason:
                    raise PermanentError(
                        f"queue {config.queue!r} does not exist; create it, or set"
                        " `declare: true` to let the source declare it"
                    ) from None
                raise error from None
        else:
            arguments: dict[str, Any] = dict(config.arguments)
            if config.queue_type == "quorum":
                arguments["x-queue-type"] = "quorum"
            queue = await channel.declare_queue(
                config.queue,
                durable=config.durable or config.queue_type == "quorum",
                arguments=arguments or None,
            )
        for binding in config.bind:
            if binding.exchange_type is not None:
                await channel.declare_exchange(
                    binding.exchange, binding.exchange_type, durable=True
                )
            await queue.bind(binding.exchange, routing_key=binding.routing_key)
        return queue

    async def _disconnect(self) -> None:
        connection = self._connection
        self._connection = self._channel = self._queue = None
        if connection is not None:
            with anyio.CancelScope(shield=True):
                await _close_quietly(connection)

    # -- reading -----------------------------------------------------------------------------

    async def _drain(self, emit: Emit) -> None:
        queue = self._queue
        if queue is None:
            await self._connect()
            queue = self._queue
        assert queue is not None
        size = self.config.batch_size
        while True:
            batch: list[Envelope] = []
            try:
                while len(batch) < size:
                    message = await queue.get(
                        no_ack=False, fail=False, timeout=self.config.connect_timeout
                    )
                    if message is None:
                        break
                    batch.append(self._envelope(message))
            except Exception as exc:
                raise classify_error(exc, f"reading queue {self.config.queue!r}") from None
            if batch:
                await emit(batch)
            if len(batch) < size:
                return

    async def _consume(self, emit: Emit) -> None:
        queue = self._queue
        assert queue is not None
        try:
            await queue.consume(self._buffer.put, no_ack=False)
        except Exception as exc:
            raise classify_error(exc, f"consuming queue {self.config.queue!r}") from None
        while True:
            await emit(await self._next_batch())

    async def _next_batch(self) -> list[Envelope]:
        size = self.config.batch_size
        batch = [self._envelope(self._checked(await self._buffer.get()))]
        with anyio.move_on_after(self.config.batch_timeout):
            while len(batch) < size:
                while len(batch) < size and not self._buffer.empty():
                    batch.append(self._envelope(self._checked(self._buffer.get_nowait())))
                if len(batch) < size:
                    batch.append(self._envelope(self._checked(await self._buffer.get())))
        return batch

    def _checked(self, item: AbstractIncomingMessage | _ConnectionLost) -> AbstractIncomingMessage:
        if isinstance(item, _ConnectionLost):
            raise TransientError(f"the connection to the broker was closed: {item}")
        return item

    def _envelope(self, message: AbstractIncomingMessage) -> Envelope:
        headers = headers_from_amqp(message.headers)
        if message.correlation_id and "x-correlation-id" not in headers:
            headers["x-correlation-id"] = message.correlation_id
        if message.message_id:
            headers["message-id"] = message.message_id
        headers["amqp-exchange"] = message.exchange or ""
        headers["amqp-routing-key"] = message.routing_key or ""
        config = self.config
        envelope = Envelope(
            payload=None,
            settlement=Settlement(self._ack_for(message)),
            correlation_id=correlation_id_from_headers(headers),
            headers=headers,
            position=SourcePosition(kind="amqp", ref=config.queue, offset=message.delivery_tag),
        )
        envelope.payload, rejected = read_body(
            message.body,
            config.format,
            max_bytes=int(config.max_message_bytes),
            max_depth=config.max_depth,
        )
        if rejected is not None:
            mark_failed(envelope, "source", rejected)
        envelope.original = envelope.payload
        return envelope

    def _ack_for(self, message: AbstractIncomingMessage) -> AckFn:
        channel = self._channel

        async def ack() -> None:
            if channel is None or channel.is_closed or channel is not self._channel:
                return  # that channel is gone: the broker has already queued it again
            try:
                await message.ack()
            except Exception as exc:  # the broker redelivers it; idempotency keys absorb that
                log.warning(
                    "amqp ack failed; the message will be delivered again",
                    flow=self._flow,
                    queue=self.config.queue,
                    error=classify_error(exc, "acknowledging").reason,
                )
            else:
                self.acked += 1

        return ack


async def _close_quietly(connection: AbstractConnection) -> None:
    try:
        with anyio.move_on_after(5):
            await connection.close()
    except Exception as exc:  # closing a dead connection: nothing left to do
        log.debug("amqp close failed", error=type(exc).__name__)


SPEC = ComponentSpec(
    kind="source",
    name="amqp",
    config=AmqpSourceConfig,
    factory=lambda config, context: AmqpSource(config, context),
    summary="Consume a RabbitMQ queue; acknowledge each message once it is settled.",
    description=(
        "Consumes `queue` with manual acknowledgements and `prefetch` QoS. A message is"
        " acknowledged to the broker only after it is delivered to every sink, filtered out"
        " or dead-lettered; if the process stops or dies first, the broker delivers it again."
        " Declare an idempotency key so a redelivered message has no second effect.\n\n"
        "Several processes consuming the same queue share its messages (competing"
        " consumers): that is how an `amqp` flow scales out.\n\n"
        "Bodies are read as JSON (default), UTF-8 text or base64 text (`format`). A body that"
        " cannot be read, or is larger than `max_message_bytes`, is dead-lettered with the"
        " reason and acknowledged, never redelivered in a loop. AMQP headers become message"
        " headers; the correlation id comes from `traceparent`, `x-correlation-id` or the"
        " AMQP `correlation_id`; the AMQP `message_id` is kept as the `message-id` header.\n\n"
        "With `declare: true` the queue is declared (classic or quorum, durable) and bound to"
        " the exchanges in `bind`; otherwise it must exist. With `--once` the messages ready"
        " in the queue are read until it is empty, then the run ends. A lost connection is"
        " re-opened with backoff; its unacknowledged messages are redelivered by the broker."
    ),
    examples=[
        "amqp: {url: '${secret:AMQP_URL}', queue: orders}",
        "amqp:\n  url: ${secret:AMQP_URL}\n  queue: erp.orders\n  declare: true\n"
        "  queue_type: quorum\n  bind: [{exchange: shop.events, routing_key: 'order.*',"
        " exchange_type: topic}]\n  prefetch: 200\n  batch_size: 50",
        "amqp: {url: 'amqp://guest:guest@127.0.0.1:5672/', queue: invoices, format: text}",
    ],
    extra="amqp",
    modules=("aio_pika",),
)
