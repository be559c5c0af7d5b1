"""``amqp`` sink: publish each message to a RabbitMQ exchange with publisher confirms."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from dovetail.connectors.amqp.codec import CONTENT_TYPES
from dovetail.connectors.amqp.config import AmqpSinkConfig
from dovetail.connectors.amqp.connection import classify_error, import_aio_pika, open_connection
from dovetail.connectors.payload_codec import encode_payload
from dovetail.core.component import BuildContext
from dovetail.core.envelope import Envelope
from dovetail.core.ids import make_traceparent
from dovetail.errors import MessageError, PermanentError
from dovetail.mapping.jsonata import Expression, compile_expression
from dovetail.plugins.spec import ComponentSpec

if TYPE_CHECKING:
    from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

log = structlog.get_logger("dovetail.connectors.amqp")
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


class AmqpSink:
    """Publishes every message of a batch at once and waits for the broker's confirms.

    ``write`` returns per message ``None`` when the broker confirmed it (``basic.ack``), a
    ``PermanentError`` when it returned it as unroutable (``mandatory``), when the exchange
    does not exist or access is refused, or when the payload cannot be encoded, and a
    ``TransientError`` for a broker nack, a timeout or a lost connection (the next write
    reconnects). Messages are persistent and carry ``message_id`` (the idempotency key when
    declared, else the message's id), ``correlation_id``, and the ``traceparent`` and
    ``x-correlation-id`` headers.
    """

    name = "amqp"

    def __init__(self, config: AmqpSinkConfig, context: BuildContext) -> None:
        self.config = config
        self._flow = context.flow
        self._expression: Expression | None = (
            compile_expression(config.routing_key_expression)
            if config.routing_key_expression
            else None
        )
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._lock = anyio.Lock()

    async def open(self) -> None:
        """Connect and open a channel in confirm mode.

        Raises ``TransientError`` when the broker cannot be reached or refuses the login.
        """
        import_aio_pika()
        await self._ensure_exchange()

    async def close(self) -> None:
        """Close the connection."""
        connection, self._connection = self._connection, None
        self._channel = self._exchange = None
        if connection is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                try:
                    await connection.close()
                except Exception as exc:  # a dead connection: nothing left to close
                    log.debug("amqp close failed", error=type(exc).__name__)

    async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
        """Publish ``batch``; return per message ``None`` (confirmed) or its failure."""
        results: list[BaseException | None] = [None] * len(batch)
        prepared: list[tuple[int, Any, str]] = []
        for index, envelope in enumerate(batch):
            try:
                prepared.append((index, self._message(envelope), self._routing_key(envelope)))
            except MessageError as exc:
                results[index] = exc
        if not prepared:
            return results
        try:
            exchange = await self._ensure_exchange()
        except MessageError as exc:
            for index, _, _ in prepared:
                results[index] = exc
            return results

        async def publish(index: int, message: Any, routing_key: str) -> None:
            try:
                await exchange.publish(
                    message,
                    routing_key=routing_key,
                    mandatory=self.config.mandatory,
                    timeout=self.config.timeout,
                )
            except Exception as exc:
                results[index] = classify_error(exc, f"publishing to {self._describe_target()}")

        async with anyio.create_task_group() as group:
            for index, message, routing_key in prepared:
                group.start_soon(publish, index, message, routing_key)
        return results  # after a channel error, the next write opens a fresh channel

    async def _ensure_exchange(self) -> AbstractExchange:
        async with self._lock:
            channel, exchange = self._channel, self._exchange
            if exchange is not None and channel is not None and not channel.is_closed:
                return exchange
            await self.close()
            name = f"dovetail {self._flow} (sink)"
            connection = await open_connection(self.config, name=name)
            try:
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                if self.config.exchange:
                    exchange = await channel.get_exchange(self.config.exchange, ensure=False)
                else:
                    exchange = channel.default_exchange
            except Exception as exc:
                with anyio.CancelScope(shield=True):
                    await connection.close()
                raise classify_error(exc, "opening a channel") from None
            self._connection, self._channel, self._exchange = connection, channel, exchange
            return exchange

    def _describe_target(self) -> str:
        exchange = self.config.exchange
        return f"exchange {exchange!r}" if exchange else "the default exchange"

    def _routing_key(self, envelope: Envelope) -> str:
        if self._expression is None:
            assert self.config.routing_key is not None
            return self.config.routing_key
        value = self._expression.evaluate(envelope.payload)  # MappingFailed is permanent
        if value is None or isinstance(value, dict | list) or value == "":
            raise PermanentError(
                f"routing key expression {self._expression.source!r} gave no text value"
            )
        key = str(value).lower() if isinstance(value, bool) else str(value)
        if len(key.encode()) > 255:
            raise PermanentError("the routing key is longer than 255 bytes")
        return key

    def _message(self, envelope: Envelope) -> Any:
        import aio_pika

        config = self.config
        correlation_id = envelope.correlation_id
        headers: dict[str, Any] = dict(config.headers)
        if correlation_id:
            headers["x-correlation-id"] = correlation_id
        if _TRACE_ID.match(correlation_id) and correlation_id != "0" * 32:
            headers["traceparent"] = make_traceparent(correlation_id)
        key = envelope.headers.get("idempotency-key")
        return aio_pika.Message(
            encode_payload(envelope.payload, config.format),
            headers=headers,
            content_type=CONTENT_TYPES[config.format],
            delivery_mode=(
                aio_pika.DeliveryMode.PERSISTENT
                if config.persistent
                else aio_pika.DeliveryMode.NOT_PERSISTENT
            ),
            message_id=key[:255] if key else envelope.id,
            correlation_id=correlation_id[:255] if correlation_id else None,
            app_id="dovetail",
        )


SPEC = ComponentSpec(
    kind="sink",
    name="amqp",
    config=AmqpSinkConfig,
    factory=lambda config, context: AmqpSink(config, context),
    summary="Publish each message to a RabbitMQ exchange, confirmed by the broker.",
    description=(
        "Publishes the payload (JSON by default) to `exchange` with a static `routing_key`"
        " or one computed per message by `routing_key_expression` (JSONata). Messages are"
        " persistent and published on a channel in confirm mode: a message counts as"
        " delivered only when the broker confirms it. With `mandatory` (default) a message"
        " that no queue receives is returned by the broker and dead-lettered as unroutable"
        " instead of vanishing.\n\n"
        "Each message carries `message_id` = the idempotency key (when the flow declares"
        " one; otherwise the message's own id), so consumers can deduplicate, and"
        " `correlation_id`, `traceparent` and `x-correlation-id`, so the correlation id"
        " follows the message.\n\n"
        "Outcomes: confirmed is delivered; a broker nack, a timeout or a lost connection is"
        " retried (the next attempt reconnects); unroutable, a missing exchange, refused"
        " access or a payload that cannot be encoded is dead-lettered."
    ),
    examples=[
        "amqp: {url: '${secret:AMQP_URL}', exchange: erp.orders, routing_key: created}",
        "amqp:\n  url: ${secret:AMQP_URL}\n  exchange: shop.events\n"
        "  routing_key_expression: '\"order.\" & region'",
        "amqp: {url: '${secret:AMQP_URL}', routing_key: invoices, format: text}",
    ],
    extra="amqp",
    modules=("aio_pika",),
)
