"""Helpers for the NATS tests: build a source from settings, read what it emits."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from dovetail.connectors.nats.source import NatsSource
from dovetail.core.envelope import Envelope
from dovetail.testing.components import build_component

NATS_URL = "nats://127.0.0.1:4222"


@dataclass(frozen=True)
class JetStream:
    """A uniquely named stream capturing ``<prefix>.>``, deleted after the test."""

    url: str
    stream: str
    prefix: str

    def subject(self, *tokens: str) -> str:
        return ".".join((self.prefix, *tokens))

    async def publish(
        self, subject: str, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        await publish_all(self.url, [(subject, body, headers)])

    async def consumer_info(self, durable: str) -> Any:
        import nats

        client = await nats.connect(self.url)
        try:
            return await client.jetstream().consumer_info(self.stream, durable)
        finally:
            await client.close()

    async def stored(self) -> list[Any]:
        """Every message in the stream, in order (read with the direct get API)."""
        import nats

        client = await nats.connect(self.url)
        try:
            js = client.jetstream()
            info = await js.stream_info(self.stream)
            return [
                await js.get_msg(self.stream, seq)
                for seq in range(info.state.first_seq, info.state.last_seq + 1)
                if info.state.messages
            ]
        finally:
            await client.close()


async def publish_all(
    url: str, messages: Sequence[tuple[str, bytes, dict[str, str] | None]]
) -> None:
    """Publish to JetStream, waiting for every PubAck."""
    import nats

    client = await nats.connect(url)
    try:
        js = client.jetstream()
        for subject, body, headers in messages:
            await js.publish(subject, body, headers=headers)
    finally:
        await client.close()


async def create_stream(url: str, stream: str, prefix: str) -> None:
    """Create ``stream`` capturing ``<prefix>.>``."""
    import nats

    client = await nats.connect(url)
    try:
        await client.jetstream().add_stream(name=stream, subjects=[f"{prefix}.>"])
    finally:
        await client.close()


async def delete_stream(url: str, stream: str) -> None:
    """Remove ``stream`` if it exists."""
    import nats
    from nats.js.errors import NotFoundError

    client = await nats.connect(url)
    try:
        with contextlib.suppress(NotFoundError):
            await client.jetstream().delete_stream(stream)
    finally:
        await client.close()


def source_snippet(url: str, stream: str, subject: str, durable: str, **settings: Any) -> str:
    """A ``nats:`` source snippet (JSON is YAML) with short timeouts for tests."""
    fields: dict[str, Any] = {
        "url": url,
        "stream": stream,
        "subject": subject,
        "durable": durable,
        "fetch_timeout": "1s",
        **settings,
    }
    return "nats: " + json.dumps(fields)


def build_source(snippet: str, project: Path, *, once: bool) -> NatsSource:
    source = build_component("source", snippet, project, once=once)
    assert isinstance(source, NatsSource)
    return source


class Reader:
    """Runs a source's ``run`` and keeps what it emits; can settle each batch as it comes."""

    def __init__(self, source: NatsSource, *, settle: bool = False, pause: float = 0.0) -> None:
        self.source = source
        self.settle = settle
        self.pause = pause
        self.emitted: list[Envelope] = []
        self.batches = 0
        self._more = anyio.Event()

    async def emit(self, batch: list[Envelope]) -> None:
        self.batches += 1
        self.emitted.extend(batch)
        self._more.set()
        self._more = anyio.Event()
        if self.pause:
            await anyio.sleep(self.pause)
        if self.settle:
            for envelope in batch:
                await envelope.settlement.settle()

    async def wait_for(self, count: int) -> None:
        """Return once ``count`` messages were emitted (bound it with ``anyio.fail_after``)."""
        while len(self.emitted) < count:
            await self._more.wait()


async def read(source: NatsSource, count: int, *, settle: bool = False) -> list[Envelope]:
    """Run ``source`` until it emitted ``count`` messages (then stop it); return them."""
    reader = Reader(source, settle=settle)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(source.run, reader.emit)
            await reader.wait_for(count)
            group.cancel_scope.cancel()
    return reader.emitted


async def eventually(check: Any, *, seconds: float = 5.0) -> None:
    """Wait until the async ``check()`` is true; fail after ``seconds``."""
    for _ in range(int(seconds / 0.05)):
        if await check():
            return
        await anyio.sleep(0.05)
    raise AssertionError(f"condition not met within {seconds}s")
