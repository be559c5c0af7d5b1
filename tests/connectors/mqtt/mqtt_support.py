"""A test-side MQTT client: publish with QoS 1, subscribe and collect, remove sessions."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiomqtt
import anyio
import orjson

HOST = os.environ.get("DOVETAIL_TEST_MQTT_HOST", "127.0.0.1")
PORT = int(os.environ.get("DOVETAIL_TEST_MQTT_PORT", "1883"))


class Names:
    """Hands out unique topics and client ids and remembers the client ids for cleanup."""

    def __init__(self) -> None:
        self.run = uuid.uuid4().hex[:12]
        self.client_ids: list[str] = []

    def topic(self, name: str) -> str:
        return f"dovetail-test/{self.run}/{name}"

    def client_id(self, name: str) -> str:
        self.client_ids.append(f"dovetail-test-{name}-{self.run}")
        return self.client_ids[-1]


async def publish(
    topic: str, payloads: Sequence[Any], *, protocol: int = 4, properties: Any = None
) -> None:
    """Publish each payload (bytes as is, anything else as JSON) with QoS 1, confirmed."""
    version = aiomqtt.ProtocolVersion.V5 if protocol == 5 else aiomqtt.ProtocolVersion.V311
    async with aiomqtt.Client(HOST, PORT, protocol=version) as client:
        for payload in payloads:
            body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
            await client.publish(topic, body, qos=1, properties=properties)


class Subscriber:
    """Collects the messages that arrive on a subscription."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.messages: list[aiomqtt.Message] = []

    async def collect(self, count: int, within: float = 5.0) -> list[aiomqtt.Message]:
        with anyio.fail_after(within):
            async for message in self.client.messages:
                self.messages.append(message)
                if len(self.messages) >= count:
                    break
        return self.messages


@asynccontextmanager
async def subscribed(topic: str, *, protocol: int = 4) -> AsyncIterator[Subscriber]:
    """A clean-session subscriber to ``topic`` with QoS 1."""
    version = aiomqtt.ProtocolVersion.V5 if protocol == 5 else aiomqtt.ProtocolVersion.V311
    async with aiomqtt.Client(HOST, PORT, protocol=version) as client:
        await client.subscribe(topic, qos=1)
        yield Subscriber(client)


async def forget_session(client_id: str) -> None:
    """Remove the broker's persistent session of ``client_id`` (clean-session connect)."""
    client = aiomqtt.Client(HOST, PORT, identifier=client_id, clean_session=True)
    async with client:
        pass


async def clear_retained(topic: str) -> None:
    """Remove the retained message of ``topic`` (an empty retained publish)."""
    async with aiomqtt.Client(HOST, PORT) as client:
        await client.publish(topic, b"", qos=1, retain=True)
