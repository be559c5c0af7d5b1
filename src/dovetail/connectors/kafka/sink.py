"""``kafka`` sink: an idempotent producer that waits for every in-sync replica.

Each batch is sent as a burst (aiokafka groups the records per partition) and ``write``
returns only when the brokers acknowledged every record with ``acks=all``. The idempotent
producer lets the brokers drop a record resent after a timeout, so a retry inside the
producer never duplicates; a retry of the whole message after a failure may (declare an
idempotency key: it travels in the ``idempotency-key`` header).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dovetail.connectors.kafka.config import KafkaSinkConfig
from dovetail.connectors.kafka.connection import KafkaConnectError, missing_extra, translate
from dovetail.connectors.payload_codec import encode_payload
from dovetail.core.component import BuildContext
from dovetail.core.envelope import Envelope
from dovetail.core.ids import make_traceparent
from dovetail.errors import PermanentError
from dovetail.mapping.jsonata import Expression, compile_expression
from dovetail.plugins.spec import ComponentSpec

if TYPE_CHECKING:
    import asyncio

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


def record_headers(envelope: Envelope) -> list[tuple[str, bytes]]:
    """``traceparent``, ``x-correlation-id`` and ``idempotency-key`` record headers."""
    correlation_id = envelope.correlation_id
    headers: list[tuple[str, bytes]] = []
    if _TRACE_ID.match(correlation_id) and correlation_id != "0" * 32:
        headers.append(("traceparent", make_traceparent(correlation_id).encode()))
    if correlation_id:
        headers.append(("x-correlation-id", correlation_id.encode()))
    key = envelope.headers.get("idempotency-key")
    if key:
        headers.append(("idempotency-key", key.encode()))
    return headers


class KafkaSink:
    """Produces one record per message to ``config.topic``.

    ``write`` returns per message ``None`` once all in-sync replicas have it, a
    ``PermanentError`` when the payload or key cannot be encoded or the brokers can never
    take the record (too large, topic forbidden), or a ``TransientError`` otherwise.
    """

    name = "kafka"

    def __init__(self, config: KafkaSinkConfig, context: BuildContext) -> None:
        self._config = config
        self._context = context
        self._key: Expression | None = (
            compile_expression(config.key) if config.key is not None else None
        )
        self._producer: Any = None

    async def open(self) -> None:
        """Start the producer. Raises ``KafkaConnectError`` when the brokers fail."""
        try:
            from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]
            from aiokafka.errors import KafkaError  # type: ignore[import-untyped]
        except ImportError:
            raise missing_extra() from None
        config = self._config
        producer = AIOKafkaProducer(
            acks="all",
            enable_idempotence=config.idempotence,
            compression_type=config.compression,
            linger_ms=int(config.linger * 1000),
            request_timeout_ms=int(config.request_timeout * 1000),
            **config.client_options(self._context.resolve),
        )
        try:
            await producer.start()
        except KafkaError as exc:
            await producer.stop()
            raise KafkaConnectError(f"cannot start the producer: {exc}") from None
        self._producer = producer

    def record_key(self, payload: Any) -> bytes | None:
        """The record key from the ``key`` expression; ``PermanentError`` when not a scalar."""
        if self._key is None:
            return None
        value = self._key.evaluate(payload)
        if value is None:
            return None
        if isinstance(value, dict | list):
            raise PermanentError(f"key {self._key.source!r} gave {type(value).__name__}")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        return text.encode("utf-8")

    async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
        """Send ``batch``; see the class docstring for the per-message results."""
        from aiokafka.errors import KafkaError

        if self._producer is None:
            await self.open()
        producer = self._producer
        assert producer is not None
        results: list[BaseException | None] = [None] * len(batch)
        pending: list[tuple[int, asyncio.Future[Any]]] = []
        for index, envelope in enumerate(batch):
            try:
                value = encode_payload(envelope.payload, self._config.format)
                key = self.record_key(envelope.payload)
            except PermanentError as exc:
                results[index] = exc
                continue
            try:
                future = await producer.send(
                    self._config.topic, value, key=key, headers=record_headers(envelope)
                )
            except KafkaError as exc:
                results[index] = translate(exc, f"cannot send to {self._config.topic}")
                continue
            pending.append((index, future))
        for index, future in pending:
            try:
                await future
            except KafkaError as exc:
                results[index] = translate(exc, f"{self._config.topic} did not take the record")
        return results

    async def close(self) -> None:
        """Flush what is in flight and stop the producer."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()


SPEC = ComponentSpec(
    kind="sink",
    name="kafka",
    config=KafkaSinkConfig,
    factory=lambda config, context: KafkaSink(config, context),
    summary="Produce each message as a Kafka record, acknowledged by all in-sync replicas.",
    description=(
        "Sends each payload as one record to `topic` (JSON by default) with `traceparent`,"
        " `x-correlation-id` and, when declared, `idempotency-key` headers. The record key"
        " comes from the JSONata expression `key`, so records of one key land on one"
        " partition in order.\n\n"
        "A message counts as delivered only when every in-sync replica has it (`acks=all`)."
        " The producer is idempotent (`idempotence`), so its own resends after a timeout never"
        " duplicate a record. A record the brokers can never take (too large, topic invalid"
        " or forbidden) or a payload that cannot be encoded is dead-lettered; timeouts and"
        " leader changes are retried.\n\n"
        "Experimental: tested against a Kafka-compatible broker, not against Apache Kafka"
        " itself (see the connector's docs page)."
    ),
    status="experimental",
    examples=[
        "kafka:\n  bootstrap_servers: ['kafka-1:9092']\n  topic: sales-orders\n  key: order_id",
        "kafka:\n  bootstrap_servers: ['${env:KAFKA_BOOTSTRAP}']\n  topic: audit\n"
        "  format: text\n  compression: gzip",
    ],
    extra="kafka",
    modules=("aiokafka",),
)
