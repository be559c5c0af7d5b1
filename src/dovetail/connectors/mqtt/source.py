"""``mqtt`` source: subscribe with QoS 1 on a persistent session; acknowledge after settlement.

The client connects with a fixed client id and a persistent session (``clean_session`` off
on 3.1.1; clean start off plus a session expiry on 5), so the broker queues QoS 1 messages
while the flow is down and delivers them on the next connect. Automatic acknowledgement is
turned off in the MQTT client (paho's ``manual_ack``): each message's PUBACK is sent from its
settlement callback, i.e. only after the message was delivered to every sink, filtered out or
dead-lettered. A message received but not settled when the process dies is sent again by the
broker when the session resumes.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import anyio
import structlog
from pydantic import Field, field_validator

from dovetail.config.types import Duration
from dovetail.connectors.mqtt.codec import headers_from_properties
from dovetail.connectors.mqtt.connection import (
    MqttConnectionConfig,
    describe_broker,
    import_aiomqtt,
    make_client,
)
from dovetail.connectors.mqtt.topics import check_topic_filter
from dovetail.connectors.payload_codec import TextFormat, read_body
from dovetail.core.ack import Settlement
from dovetail.core.component import BuildContext, Emit
from dovetail.core.envelope import Envelope, SourcePosition
from dovetail.core.ids import correlation_id_from_headers
from dovetail.core.steps import mark_failed
from dovetail.errors import PermanentError, TransientError
from dovetail.plugins.spec import ComponentSpec
from dovetail.types import AckFn

if TYPE_CHECKING:
    import aiomqtt

log = structlog.get_logger("dovetail.connectors.mqtt")

RECONNECT_INITIAL = 0.5
RECONNECT_MAX = 30.0


class MqttSourceConfig(MqttConnectionConfig):
    topics: list[str] = Field(min_length=1)
    """Topic filters to subscribe to with QoS 1 (`+` and `#` wildcards; `$share/group/filter`
    for shared subscriptions)."""
    client_id: str | None = None
    """Client id of the persistent session; default `dovetail-<flow>`. It must stay the same
    across restarts, and differ between workers that consume side by side."""
    format: TextFormat = "json"
    """How payloads are parsed: `json` or UTF-8 `text`."""
    session_expiry: Duration = 7 * 86400.0
    """MQTT 5: how long the broker keeps the session (and queues messages) while the flow is
    disconnected. MQTT 3.1.1 sessions last as long as the broker's own setting allows."""
    max_inflight: int = Field(default=100, ge=1, le=65535)
    """MQTT 5: most unacknowledged messages the broker may send at once (Receive Maximum).
    On 3.1.1 the broker's own limit applies (Mosquitto: `max_inflight_messages`, 20)."""
    batch_size: int | None = Field(default=None, ge=1)
    """Most messages handed to the flow at once; default: the flow's `runtime.batch_size`."""
    max_payload_bytes: int = Field(default=1_048_576, ge=1)
    """Largest accepted payload; larger messages are dead-lettered."""
    max_depth: int = Field(default=64, ge=1, le=512)
    """Deepest nesting accepted in a JSON payload; deeper messages are dead-lettered."""
    once_idle: Duration = 1.0
    """With `--once`: stop when no message arrived for this long and every message read is
    settled."""

    @field_validator("topics")
    @classmethod
    def _check_topics(cls, value: list[str]) -> list[str]:
        for topic in value:
            check_topic_filter(topic)
        return value


class MqttSource:
    """Subscribes to ``topics`` and emits each message; see the module docstring for acks.

    The connection lives from the first ``run`` until ``close()``, so messages still being
    settled while the flow drains are acknowledged on the connection they arrived on. When
    the connection breaks, ``run`` reconnects with backoff; acknowledgements of messages that
    arrived on the broken connection are dropped, because the broker sends those messages
    again on the resumed session (they are delivered twice unless an idempotency key is
    declared). With ``once``, ``run`` returns once nothing arrived for ``once_idle`` and
    every message read is settled.
    """

    name = "mqtt"

    def __init__(self, config: MqttSourceConfig, context: BuildContext) -> None:
        self.config = config
        self._flow = context.flow
        self._once = context.once
        self.client_id = config.client_id or f"dovetail-{context.flow}"
        self._batch_size = config.batch_size or max(1, int(context.options.get("batch_size", 100)))
        self._client: aiomqtt.Client | None = None
        self._generation = 0
        self._outstanding = 0
        self.acked = 0
        """Messages acknowledged to the broker so far (for tests and metrics)."""

    async def open(self) -> None:
        """Check that the MQTT client library is installed (connecting happens in ``run``)."""
        import_aiomqtt()

    async def run(self, emit: Emit) -> None:
        """Receive and emit until cancelled (once: until idle and settled); reconnects."""
        aiomqtt = import_aiomqtt()
        delay = RECONNECT_INITIAL
        while True:
            try:
                client = await self._connect()
                delay = RECONNECT_INITIAL
                await self._consume(client, emit)
                return
            except aiomqtt.MqttError as exc:
                await self._disconnect()
                if self._once:
                    raise TransientError(
                        f"MQTT broker {describe_broker(self.config)} failed: {exc}"
                    ) from None
                log.warning(
                    "MQTT connection lost; reconnecting",
                    flow=self._flow,
                    broker=describe_broker(self.config),
                    error=str(exc),
                    retry_in=delay,
                )
                await anyio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)

    async def commit(self) -> None:
        """Nothing to persist: acknowledgements go to the broker as messages settle."""

    async def close(self) -> None:
        """Disconnect cleanly; acknowledgements already sent are flushed before DISCONNECT."""
        await self._disconnect()

    async def _connect(self) -> aiomqtt.Client:
        if self._client is not None:
            return self._client
        config = self.config
        client = make_client(
            config,
            client_id=self.client_id,
            persistent=True,
            session_expiry=config.session_expiry,
            max_inflight=config.max_inflight,
        )
        # acknowledge from the settlement callback, never on receipt
        client._client.manual_ack_set(True)
        await client.__aenter__()
        self._client = client
        self._generation += 1
        try:
            granted = await client.subscribe(self._subscriptions(), timeout=config.timeout)
            self._check_granted(list(granted))
        except BaseException:
            await self._disconnect()
            raise
        log.info(
            "MQTT source connected",
            flow=self._flow,
            broker=describe_broker(config),
            client_id=self.client_id,
            topics=list(config.topics),
        )
        return client

    def _subscriptions(self) -> list[tuple[str, Any]]:
        if self.config.protocol == "5":
            from paho.mqtt.subscribeoptions import SubscribeOptions

            # retained messages only for a new subscription, not on every resume
            options = SubscribeOptions(
                qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB
            )
            return [(topic, options) for topic in self.config.topics]
        return [(topic, 1) for topic in self.config.topics]

    def _check_granted(self, granted: list[Any]) -> None:
        """Refused subscriptions stop the flow; a QoS 0 grant is worth a warning."""
        for topic, result in zip(self.config.topics, granted, strict=False):
            code = int(getattr(result, "value", result))
            if code >= 0x80:
                raise PermanentError(
                    f"the broker refused the subscription to {topic!r} (reason code"
                    f" {code:#04x}); check the broker's access rules for this client"
                )
            if code == 0:
                log.warning(
                    "the broker granted QoS 0 only: messages may be lost",
                    flow=self._flow,
                    topic=topic,
                )

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            await client.__aexit__(None, None, None)

    async def _consume(self, client: aiomqtt.Client, emit: Emit) -> None:
        messages = client.messages
        generation = self._generation
        while True:
            try:
                if self._once:
                    with anyio.fail_after(self.config.once_idle):
                        first = await anext(messages)
                else:
                    first = await anext(messages)
            except TimeoutError:
                if self._outstanding <= 0:
                    return
                continue
            batch = [self._envelope(first, generation)]
            while len(batch) < self._batch_size and len(messages) > 0:
                batch.append(self._envelope(await anext(messages), generation))
            self._outstanding += len(batch)
            await emit(batch)

    def _envelope(self, message: aiomqtt.Message, generation: int) -> Envelope:
        topic = message.topic.value
        headers = headers_from_properties(message.properties)
        headers["mqtt-topic"] = topic
        envelope = Envelope(
            payload=None,
            settlement=Settlement(self._ack_for(message.mid, message.qos, generation)),
            correlation_id=correlation_id_from_headers(headers),
            headers=headers,
            position=SourcePosition(kind="mqtt", ref=topic, offset=message.mid),
        )
        data = (
            message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
        )
        config = self.config
        envelope.payload, rejected = read_body(
            data,
            config.format,
            max_bytes=config.max_payload_bytes,
            max_depth=config.max_depth,
            what="the payload",
        )
        if rejected is not None:
            mark_failed(envelope, "source", rejected)
        envelope.original = envelope.payload
        return envelope

    def _ack_for(self, mid: int, qos: int, generation: int) -> AckFn:
        async def ack() -> None:
            self._outstanding -= 1
            client = self._client
            if client is None or generation != self._generation or qos == 0:
                return  # QoS 0 needs none; a broken connection's messages come again
            if client._client.ack(mid, qos) == 0:  # MQTT_ERR_SUCCESS: the PUBACK is queued
                self.acked += 1

        return ack


SPEC = ComponentSpec(
    kind="source",
    name="mqtt",
    config=MqttSourceConfig,
    factory=lambda config, context: MqttSource(config, context),
    summary="Subscribe to MQTT topics (QoS 1, persistent session); acknowledge after settlement.",
    description=(
        "Subscribes to `topics` with QoS 1 on a persistent session under a fixed client id, so"
        " the broker keeps the subscription and queues messages while the flow is stopped;"
        " they arrive when it starts again.\n\n"
        "Each message is acknowledged (PUBACK) only after it is settled: delivered to every"
        " sink, filtered out, or dead-lettered. A message read but not settled when the"
        " process stops or dies is sent again by the broker when the session resumes, so"
        " nothing is lost on `kill -9`; declare an idempotency key to absorb the repeats.\n\n"
        "A payload that is not valid JSON (or UTF-8 text), is larger than `max_payload_bytes`"
        " or nests deeper than `max_depth` is dead-lettered with the reason and acknowledged."
        " With `protocol: 5`, the `traceparent` and `x-correlation-id` user properties give"
        " the correlation id and every user property becomes a header; the topic is in the"
        " `mqtt-topic` header.\n\n"
        "Messages published with QoS 0 are delivered with QoS 0 and cannot be redelivered;"
        " QoS 2 subscriptions are not offered because the client keeps no durable QoS 2"
        " state. Several workers share the load with a shared subscription"
        " (`$share/<group>/<filter>`) and distinct client ids."
    ),
    examples=[
        "mqtt: {topics: [factory/+/telemetry]}",
        "mqtt:\n  host: broker.internal\n  port: 8883\n  tls: true\n  username: dovetail\n"
        "  password: ${secret:MQTT_PASSWORD}\n  protocol: 5\n  client_id: dovetail-telemetry\n"
        "  topics: [factory/+/telemetry, factory/+/alarms]",
        "mqtt: {topics: ['$share/erp/orders/#'], client_id: 'dovetail-orders-${env:HOSTNAME}'}",
    ],
    extra="mqtt",
    modules=("aiomqtt",),
)
