"""``mqtt`` sink: publish each message with QoS 1 and count it delivered on the broker's PUBACK."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import anyio
import structlog
from pydantic import Field, field_validator, model_validator

from dovetail.config.fields import JsonataExpr
from dovetail.connectors.mqtt.codec import encode_payload, publish_properties
from dovetail.connectors.mqtt.connection import (
    MqttConnectionConfig,
    describe_broker,
    import_aiomqtt,
    make_client,
)
from dovetail.connectors.mqtt.topics import check_topic_name
from dovetail.connectors.payload_codec import TextFormat
from dovetail.core.component import BuildContext
from dovetail.core.envelope import Envelope
from dovetail.core.ids import make_traceparent
from dovetail.errors import MappingFailed, PermanentError, TransientError
from dovetail.mapping.jsonata import Expression, compile_expression
from dovetail.plugins.spec import ComponentSpec

if TYPE_CHECKING:
    import aiomqtt

log = structlog.get_logger("dovetail.connectors.mqtt")


class MqttSinkConfig(MqttConnectionConfig):
    topic: str | None = None
    """Topic every message is published to."""
    topic_expression: JsonataExpr | None = None
    """JSONata over the payload giving each message's topic (`'orders/' & region`); use
    instead of `topic`. A message whose expression gives no valid topic is dead-lettered."""
    qos: Literal[1, 2] = 1
    """Delivery level: 1 (at least once; the broker's PUBACK confirms) or 2 (exactly once
    between sink and broker; PUBCOMP confirms)."""
    retain: bool = False
    """Ask the broker to keep the last message of each topic for new subscribers."""
    format: TextFormat = "json"
    """How payloads are written: `json`, or `text` (strings as they are, others as JSON)."""
    client_id: str | None = None
    """Client id; default: a random one per connection (publishing needs no session)."""
    max_inflight: int = Field(default=100, ge=1, le=65535)
    """Most publishes awaiting confirmation at once."""

    @field_validator("topic")
    @classmethod
    def _check_topic(cls, value: str | None) -> str | None:
        return check_topic_name(value) if value is not None else None

    @model_validator(mode="after")
    def _one_topic(self) -> MqttSinkConfig:
        if (self.topic is None) == (self.topic_expression is None):
            raise ValueError("give exactly one of `topic` and `topic_expression`")
        return self


class MqttSink:
    """Publishes each message and waits for the broker's confirmation.

    ``write`` returns ``None`` for a message once the broker confirmed it (PUBACK for QoS 1,
    PUBCOMP for QoS 2), a ``TransientError`` when the connection failed or the confirmation
    did not come within ``timeout`` (the next write reconnects), and a ``PermanentError``
    when the message cannot be published at all (no valid topic). With ``protocol: 5`` each
    message carries ``traceparent``, ``x-correlation-id`` and, when set,
    ``idempotency-key`` as user properties.
    """

    name = "mqtt"

    def __init__(self, config: MqttSinkConfig, context: BuildContext) -> None:
        self.config = config
        self._flow = context.flow
        self._expression: Expression | None = (
            compile_expression(config.topic_expression) if config.topic_expression else None
        )
        self._client: aiomqtt.Client | None = None
        self._limiter = anyio.CapacityLimiter(config.max_inflight)

    async def open(self) -> None:
        """Connect to the broker; a broker that is down is retried by the first write."""
        aiomqtt = import_aiomqtt()
        try:
            await self._connect()
        except aiomqtt.MqttError as exc:
            log.warning(
                "MQTT broker not reachable yet",
                flow=self._flow,
                broker=describe_broker(self.config),
                error=str(exc),
            )

    async def close(self) -> None:
        """Disconnect from the broker."""
        await self._disconnect()

    async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
        """Publish every message of ``batch`` concurrently; per message ``None`` or its failure."""
        aiomqtt = import_aiomqtt()
        results: list[BaseException | None] = [None] * len(batch)
        try:
            client = await self._connect()
        except aiomqtt.MqttError as exc:
            error = TransientError(f"cannot connect to {describe_broker(self.config)}: {exc}")
            return [error] * len(batch)
        broken = False

        async def publish(index: int, envelope: Envelope) -> None:
            nonlocal broken
            try:
                topic = self._topic(envelope)
            except PermanentError as exc:
                results[index] = exc
                return
            headers = dict(envelope.headers)
            headers["traceparent"] = make_traceparent(envelope.correlation_id)
            headers["x-correlation-id"] = envelope.correlation_id
            content_type = "application/json" if self.config.format == "json" else "text/plain"
            properties = (
                publish_properties(headers, content_type) if self.config.protocol == "5" else None
            )
            async with self._limiter:
                try:
                    await client.publish(
                        topic,
                        encode_payload(envelope.payload, self.config.format),
                        qos=self.config.qos,
                        retain=self.config.retain,
                        properties=properties,
                        timeout=self.config.timeout,
                    )
                except aiomqtt.MqttError as exc:
                    broken = True
                    results[index] = TransientError(f"MQTT publish to {topic!r} failed: {exc}")
                except PermanentError as exc:  # the payload cannot be written as a body
                    results[index] = exc
                except ValueError as exc:  # paho refuses the message itself (size, topic)
                    results[index] = PermanentError(f"MQTT publish to {topic!r} refused: {exc}")

        async with anyio.create_task_group() as group:
            for index, envelope in enumerate(batch):
                group.start_soon(publish, index, envelope)
        if broken:
            await self._disconnect()
        return results

    def _topic(self, envelope: Envelope) -> str:
        if self._expression is None:
            assert self.config.topic is not None
            return self.config.topic
        value = self._expression.evaluate(envelope.payload)
        if not isinstance(value, str):
            raise MappingFailed(
                f"topic_expression {self._expression.source!r} gave"
                f" {type(value).__name__}, not a topic"
            )
        try:
            return check_topic_name(value)
        except ValueError as exc:
            raise MappingFailed(f"topic_expression gave an invalid topic: {exc}") from None

    async def _connect(self) -> aiomqtt.Client:
        if self._client is not None:
            return self._client
        client = make_client(
            self.config,
            client_id=self.config.client_id,
            persistent=False,
            max_inflight=self.config.max_inflight,
        )
        client.pending_calls_threshold = self.config.max_inflight + 1
        await client.__aenter__()
        self._client = client
        return client

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            await client.__aexit__(None, None, None)
        except Exception as exc:  # already gone: nothing more to release
            log.debug("MQTT disconnect failed", flow=self._flow, error=str(exc))


SPEC = ComponentSpec(
    kind="sink",
    name="mqtt",
    config=MqttSinkConfig,
    factory=lambda config, context: MqttSink(config, context),
    summary="Publish messages to an MQTT topic with QoS 1, confirmed by the broker.",
    description=(
        "Publishes each message to `topic`, or to the topic `topic_expression` computes from"
        " the payload, and counts it delivered only when the broker confirmed it (PUBACK for"
        " QoS 1, PUBCOMP for QoS 2). A connection failure or a confirmation that does not"
        " come within `timeout` is retried by the delivery layer; a message whose topic"
        " expression gives no valid topic (empty, a wildcard, not text) is dead-lettered.\n\n"
        "Payloads are written as JSON (`format: json`) or text. With `protocol: 5`, each"
        " message carries `traceparent`, `x-correlation-id` and the idempotency key as user"
        " properties, and its content type. MQTT has no broker-side deduplication: a retried"
        " publish can reach subscribers twice; consumers should be idempotent."
    ),
    examples=[
        "mqtt: {topic: erp/orders}",
        "mqtt: {topic_expression: \"'plants/' & plant & '/orders'\", retain: true, protocol: 5}",
    ],
    extra="mqtt",
    modules=("aiomqtt",),
)
