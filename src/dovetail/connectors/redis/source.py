"""``redis`` source: read a stream through a consumer group; XACK only after settlement.

Start-up: the group is created (``MKSTREAM``) when missing, then the consumer's own pending
entries (its PEL: read before a crash, never acknowledged) are read again from id ``0``.
Then new entries are read with ``XREADGROUP ... >``, and every ``claim_interval`` entries
that other consumers of the group left pending for longer than ``claim_idle`` (a consumer
that died) are taken over with ``XAUTOCLAIM``. An entry's settlement queues its id; the
next ``commit()`` acknowledges the queued ids in one ``XACK``. An entry read but not acked
stays pending, so nothing is lost on ``kill -9``.
"""

from __future__ import annotations

import socket
import time
from typing import Any, Literal

import anyio
import structlog
from pydantic import Field

from dovetail.config.types import Duration
from dovetail.connectors.payload_codec import TextFormat
from dovetail.connectors.redis.connection import (
    RedisConnectionConfig,
    connection_errors,
    describe_url,
    import_redis,
    open_client,
)
from dovetail.connectors.redis.entries import entry_as_text, read_entry, text
from dovetail.core.ack import Settlement
from dovetail.core.component import BuildContext, Emit
from dovetail.core.envelope import Envelope, SourcePosition
from dovetail.core.ids import correlation_id_from_headers
from dovetail.core.steps import mark_failed
from dovetail.errors import PayloadRejected, TransientError
from dovetail.plugins.spec import ComponentSpec

log = structlog.get_logger("dovetail.connectors.redis")

RECONNECT_INITIAL = 0.5
RECONNECT_MAX = 30.0

Entry = tuple[bytes, dict[bytes, bytes] | None]


class RedisSourceConfig(RedisConnectionConfig):
    group: str | None = None
    """Consumer group; default `dovetail-<flow>`. Created when missing."""
    consumer: str | None = None
    """This worker's consumer name in the group; default: the host name. Keep it stable
    across restarts so a restarted worker finds its own pending entries."""
    start: Literal["oldest", "newest"] = "oldest"
    """Where a newly created group starts: the stream's first entry, or only new entries."""
    field: str | None = "payload"
    """Entry field that holds the payload; other fields become headers. Set to null to take
    the whole field map (as text) as the payload."""
    format: TextFormat = "json"
    """How the payload field is parsed: `json` or UTF-8 `text`."""
    batch_size: int | None = Field(default=None, ge=1)
    """Most entries read at once; default: the flow's `runtime.batch_size`."""
    block: Duration = 1.0
    """Longest wait for new entries per read."""
    claim_idle: Duration = 60.0
    """Entries pending with another consumer for longer than this are taken over. Must be
    longer than the slowest message takes to settle."""
    claim_interval: Duration = 10.0
    """How often to look for entries to take over."""
    max_payload_bytes: int = Field(default=1_048_576, ge=1)
    """Largest accepted payload; larger entries are dead-lettered."""
    max_depth: int = Field(default=64, ge=1, le=512)
    """Deepest nesting accepted in a JSON payload; deeper entries are dead-lettered."""


class RedisSource:
    """Reads ``stream`` as consumer ``consumer`` of ``group``; see the module docstring.

    With ``once``, ``run`` reads the pending entries, takes over abandoned ones once, reads
    new entries until none are left, and returns.
    """

    name = "redis"

    def __init__(self, config: RedisSourceConfig, context: BuildContext) -> None:
        self.config = config
        self._flow = context.flow
        self._once = context.once
        self.group = config.group or f"dovetail-{context.flow}"
        self.consumer = config.consumer or socket.gethostname()
        self._count = config.batch_size or max(1, int(context.options.get("batch_size", 100)))
        self._client: Any = None
        self._in_flight: set[bytes] = set()
        self._acked: list[bytes] = []
        self._last_claim = 0.0
        self.claimed = 0
        """Entries taken over from other consumers so far."""

    async def open(self) -> None:
        """Connect and create the consumer group (with the stream) when it does not exist."""
        import_redis()
        if self._client is None:
            self._client = open_client(self.config, read_wait=self.config.block)
        await self._ensure_group()

    async def run(self, emit: Emit) -> None:
        """Emit pending, taken-over and new entries; return when drained (``once``).

        A lost connection is retried with backoff (``once``: raised); a group deleted while
        running is created again.
        """
        import redis.exceptions as redis_errors

        delay = RECONNECT_INITIAL
        while True:
            try:
                await self._ensure_group()
                await self._read_pending(emit)
                delay = RECONNECT_INITIAL
                await self._read_new(emit)
                return
            except redis_errors.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                log.warning(
                    "consumer group missing; creating it again",
                    flow=self._flow,
                    stream=self.config.stream,
                    group=self.group,
                )
            except connection_errors() as exc:
                if self._once:
                    raise TransientError(
                        f"Redis {describe_url(self.config.url)} failed: {exc}"
                    ) from None
                log.warning(
                    "Redis connection lost; reconnecting",
                    flow=self._flow,
                    url=describe_url(self.config.url),
                    error=str(exc),
                    retry_in=delay,
                )
                await anyio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)

    async def commit(self) -> None:
        """Acknowledge the settled entries in one ``XACK``; kept for the next call on failure."""
        if not self._acked or self._client is None:
            return
        ids, self._acked = self._acked, []
        try:
            await self._client.xack(self.config.stream, self.group, *ids)
        except BaseException:
            self._acked[:0] = ids
            raise

    async def close(self) -> None:
        """Acknowledge what is settled and close the connection pool."""
        client = self._client
        if client is None:
            return
        try:
            await self.commit()
        except connection_errors() as exc:
            log.warning(
                "settled entries not acknowledged; they will be read again",
                flow=self._flow,
                count=len(self._acked),
                error=str(exc),
            )
        finally:
            self._client = None
            await client.aclose()

    async def _ensure_group(self) -> None:
        import redis.exceptions

        start = "0" if self.config.start == "oldest" else "$"
        try:
            await self._client.xgroup_create(
                self.config.stream, self.group, id=start, mkstream=True
            )
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        else:
            log.info(
                "consumer group created",
                flow=self._flow,
                stream=self.config.stream,
                group=self.group,
                start=self.config.start,
            )

    async def _read_pending(self, emit: Emit) -> None:
        """Read this consumer's own pending entries again (left by a crash or a lost link)."""
        last = b"0"
        again = 0
        while True:
            entries = await self._read(last, block=None)
            if not entries:
                break
            last = entries[-1][0]
            again += len(entries)
            await self._emit(entries, emit)
        if again:
            log.warning(
                "pending entries read again",
                flow=self._flow,
                count=again,
                stream=self.config.stream,
                consumer=self.consumer,
            )

    async def _read_new(self, emit: Emit) -> None:
        while True:
            claimed = 0
            due = time.monotonic() - self._last_claim >= self.config.claim_interval
            if (self._once and not self._last_claim) or (not self._once and due):
                claimed = await self._claim(emit)
            block = None if self._once else max(1, int(self.config.block * 1000))
            entries = await self._read(b">", block=block)
            if entries:
                await self._emit(entries, emit)
            elif self._once and not claimed:
                return

    async def _read(self, start: bytes, *, block: int | None) -> list[Entry]:
        reply = await self._client.xreadgroup(
            self.group, self.consumer, {self.config.stream: start}, count=self._count, block=block
        )
        if not reply:
            return []
        # RESP2: [[stream, [(id, fields), ...]]]; RESP3: {stream: [[(id, fields), ...]]}
        if isinstance(reply, dict):
            (entries,) = reply.values()
            entries = entries[0] if entries and isinstance(entries[0], list) else entries
        else:
            entries = reply[0][1]
        return [(entry_id, fields) for entry_id, fields in entries]

    async def _claim(self, emit: Emit) -> int:
        """Take over entries idle for ``claim_idle`` in other consumers' PELs; emit them."""
        self._last_claim = time.monotonic()
        cursor: bytes = b"0-0"
        total = 0
        min_idle = int(self.config.claim_idle * 1000)
        while True:
            reply = await self._client.xautoclaim(
                self.config.stream, self.group, self.consumer, min_idle, cursor, count=self._count
            )
            cursor, entries = reply[0], reply[1]
            fresh = [(i, f) for i, f in entries if i not in self._in_flight]
            if fresh:
                total += len(fresh)
                self.claimed += len(fresh)
                log.warning(
                    "pending entries taken over",
                    flow=self._flow,
                    count=len(fresh),
                    stream=self.config.stream,
                    group=self.group,
                )
                await self._emit(fresh, emit)
            if cursor in (b"0-0", "0-0"):
                return total

    async def _emit(self, entries: list[Entry], emit: Emit) -> None:
        batch: list[Envelope] = []
        gone: list[bytes] = []
        for entry_id, fields in entries:
            if entry_id in self._in_flight:
                continue
            if fields is None:  # trimmed or deleted while pending: nothing left to deliver
                gone.append(entry_id)
                continue
            self._in_flight.add(entry_id)
            batch.append(self._envelope(entry_id, fields))
        if gone:
            log.warning(
                "pending entries no longer in the stream; acknowledged",
                flow=self._flow,
                count=len(gone),
                stream=self.config.stream,
            )
            await self._client.xack(self.config.stream, self.group, *gone)
        if batch:
            await emit(batch)

    def _envelope(self, entry_id: bytes, fields: dict[bytes, bytes]) -> Envelope:
        config = self.config
        ident = text(entry_id)

        async def ack() -> None:
            self._in_flight.discard(entry_id)
            self._acked.append(entry_id)

        envelope = Envelope(
            payload=None,
            settlement=Settlement(ack),
            position=SourcePosition(kind="redis", ref=f"{config.stream}/{ident}"),
        )
        try:
            payload, headers = read_entry(
                fields, config.field, config.format, config.max_payload_bytes, config.max_depth
            )
        except PayloadRejected as exc:
            envelope.payload = entry_as_text(fields)
            headers = {}
            mark_failed(envelope, "source", exc)
        else:
            envelope.payload = payload
        headers["redis-stream-id"] = ident
        envelope.headers = headers
        envelope.correlation_id = correlation_id_from_headers(headers)
        envelope.original = envelope.payload
        return envelope


SPEC = ComponentSpec(
    kind="source",
    name="redis",
    config=RedisSourceConfig,
    factory=lambda config, context: RedisSource(config, context),
    summary="Read a Redis stream through a consumer group; acknowledge (XACK) after settlement.",
    description=(
        "Reads `stream` as one consumer of a consumer group (created, with the stream, when"
        " missing). Each entry is acknowledged with `XACK` only after it is settled: delivered"
        " to every sink, filtered out, or dead-lettered.\n\n"
        "Recovery: on start the consumer first reads its own pending entries again (read"
        " before a crash but never acknowledged), and every `claim_interval` it takes over"
        " (`XAUTOCLAIM`) entries that other consumers left pending for longer than"
        " `claim_idle`, so a worker that died does not strand its entries. Entries can"
        " therefore be delivered more than once; declare an idempotency key.\n\n"
        "The payload is the JSON (or text) in `field` (default `payload`), the other fields"
        " being headers; with `field: null` it is the whole field map. An entry without the"
        " field, with a value that does not parse, larger than `max_payload_bytes` or nested"
        " deeper than `max_depth` is dead-lettered with the reason and acknowledged. The"
        " correlation id comes from a `traceparent` or `x-correlation-id` field.\n\n"
        "Several workers share a stream by using the same group with distinct consumer names."
    ),
    examples=[
        "redis: {stream: orders, group: erp-sync}",
        "redis:\n  url: redis://:${secret:REDIS_PASSWORD}@cache:6379/0\n  stream: telemetry\n"
        "  group: dovetail\n  consumer: ${env:HOSTNAME}\n  field: null\n  claim_idle: 5m",
    ],
    extra="redis",
    modules=("redis",),
)
