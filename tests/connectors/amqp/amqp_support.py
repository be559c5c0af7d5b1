"""Helpers shared by the AMQP connector tests: a RabbitMQ client for arranging and checking."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aio_pika
import anyio
import orjson
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

AMQP_URL = os.environ.get("DOVETAIL_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
"""The RabbitMQ the tests use: the local service unless the environment names another."""


def unique(prefix: str) -> str:
    """A queue or exchange name no other test (or earlier run) uses."""
    return f"dovetail-test.{prefix}.{uuid.uuid4().hex[:12]}"


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    """Poll ``check`` until it is true; fail after ``seconds`` (the broker has no event)."""
    with anyio.fail_after(seconds):
        while not await check():  # noqa: ASYNC110 - broker state can only be polled
            await anyio.sleep(0.02)


@dataclass
class QueueState:
    """What the broker says about a queue: ready messages and consumers."""

    ready: int
    consumers: int


class BrokerClient:
    """One connection with a confirm-mode channel, for arranging and inspecting queues."""

    def __init__(self, connection: AbstractConnection, channel: AbstractChannel) -> None:
        self.connection = connection
        self.channel = channel

    async def declare(self, queue: str, **arguments: Any) -> None:
        """Declare a durable classic queue (``arguments`` become queue arguments)."""
        await self.channel.declare_queue(queue, durable=True, arguments=arguments or None)

    async def publish(
        self,
        queue: str,
        bodies: Sequence[Any],
        *,
        headers: dict[str, Any] | None = None,
        exchange: str = "",
        **properties: Any,
    ) -> None:
        """Publish each body (bytes as is, anything else as JSON), confirmed by the broker."""
        target = (
            await self.channel.get_exchange(exchange, ensure=False)
            if exchange
            else self.channel.default_exchange
        )
        for body in bodies:
            raw = body if isinstance(body, bytes) else orjson.dumps(body)
            message = aio_pika.Message(raw, headers=headers, **properties)
            await target.publish(message, routing_key=queue)

    async def state(self, queue: str) -> QueueState:
        """Ready messages and consumers of ``queue`` (a passive declare)."""
        channel = await self.connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
            result = declared.declaration_result
            return QueueState(ready=result.message_count or 0, consumers=result.consumer_count or 0)
        finally:
            await channel.close()

    async def get_all(self, queue: str) -> list[AbstractIncomingMessage]:
        """Take (and acknowledge) every ready message of ``queue``."""
        declared = await self.channel.get_queue(queue, ensure=False)
        taken: list[AbstractIncomingMessage] = []
        while (message := await declared.get(no_ack=True, fail=False)) is not None:
            taken.append(message)
        return taken

    async def delete(self, queues: Sequence[str] = (), exchanges: Sequence[str] = ()) -> None:
        """Delete queues and exchanges, ignoring the ones that do not exist."""
        for name in queues:
            channel = await self.connection.channel()
            await channel.queue_delete(name)
            await channel.close()
        for name in exchanges:
            channel = await self.connection.channel()
            await channel.exchange_delete(name)
            await channel.close()


@asynccontextmanager
async def broker() -> AsyncIterator[BrokerClient]:
    """A connected ``BrokerClient``, closed on exit."""
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel(publisher_confirms=True)
        yield BrokerClient(connection, channel)
    finally:
        await connection.close()
