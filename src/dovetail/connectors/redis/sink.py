"""``redis`` sink: append each message to a stream with ``XADD``, deduplicated by idempotency key.

Every message is written by one Lua script, which Redis runs atomically: when the message has
an idempotency key, ``SET <dedupe key> NX PX <ttl>`` first, and only if that key was new,
``XADD`` (with ``MAXLEN ~`` trimming when configured). A ``MULTI`` transaction cannot make the
``XADD`` depend on the ``SET`` result, a script can. If the ``XADD`` fails, the script deletes
the dedupe key again, so a retry is not mistaken for a duplicate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
    translate_error,
)
from dovetail.connectors.redis.entries import write_entry
from dovetail.core.component import BuildContext
from dovetail.core.envelope import Envelope
from dovetail.core.ids import make_traceparent
from dovetail.errors import MessageError, TransientError
from dovetail.plugins.spec import ComponentSpec

log = structlog.get_logger("dovetail.connectors.redis")

APPEND_SCRIPT = """
local dedupe = KEYS[2]
if dedupe then
  if not redis.call('SET', dedupe, '1', 'NX', 'PX', ARGV[1]) then
    return false
  end
end
local command = {'XADD', KEYS[1]}
if ARGV[2] ~= '' then
  table.insert(command, 'MAXLEN')
  table.insert(command, '~')
  table.insert(command, ARGV[2])
end
table.insert(command, '*')
for index = 3, #ARGV do
  table.insert(command, ARGV[index])
end
local added = redis.pcall(unpack(command))
if type(added) == 'table' and added.err then
  if dedupe then
    redis.call('DEL', dedupe)
  end
  return added
end
if dedupe then
  redis.call('SET', dedupe, added, 'XX', 'KEEPTTL')
end
return added
"""
"""KEYS: stream, [dedupe key]; ARGV: ttl ms, maxlen or '', field, value, field, value..."""


class RedisSinkConfig(RedisConnectionConfig):
    field: str | None = "payload"
    """Entry field that receives the payload (JSON, or text with `format: text`). Set to null
    to write each top-level key of an object payload as its own field."""
    format: TextFormat = "json"
    """How the payload is written into `field`: `json`, or `text` (strings as they are)."""
    maxlen: int | None = Field(default=None, ge=1)
    """Trim the stream to about this many entries (`MAXLEN ~`) on every append."""
    dedupe_ttl: Duration = 7 * 86400.0
    """How long an idempotency key is remembered in Redis: a message with a key already
    appended within this time is not appended again."""
    dedupe_prefix: str = "dovetail:dedupe:"
    """Prefix of the dedupe keys; the key is `<prefix>{<stream>}:<idempotency key>` (the
    hash tag keeps it in the stream's cluster slot)."""


class RedisSink:
    """Appends each message to ``stream`` in one pipelined round trip per batch.

    ``write`` returns ``None`` for an appended entry and for a duplicate (its idempotency
    key is remembered), a ``TransientError`` when Redis is unreachable, out of memory or
    failing over, and a ``PermanentError`` for other error replies (the key holds no
    stream) or a payload that cannot be written without ``field``. Each entry carries the
    ``traceparent``, ``x-correlation-id`` and ``idempotency-key`` fields.
    """

    name = "redis"

    def __init__(self, config: RedisSinkConfig, context: BuildContext) -> None:
        self.config = config
        self._flow = context.flow
        self._client: Any = None
        self._script: Any = None
        self.duplicates = 0
        """Messages not appended because their idempotency key was already there."""

    async def open(self) -> None:
        """Create the client and register the append script (connecting happens lazily)."""
        import_redis()
        if self._client is None:
            self._client = open_client(self.config)
            self._script = self._client.register_script(APPEND_SCRIPT)

    async def close(self) -> None:
        """Close the connection pool."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def dedupe_key(self, idempotency_key: str) -> str:
        """The Redis key that remembers ``idempotency_key`` for this stream."""
        return f"{self.config.dedupe_prefix}{{{self.config.stream}}}:{idempotency_key}"

    async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
        """Append every message of ``batch``; per message ``None`` or its failure."""
        if self._client is None:
            await self.open()
        config = self.config
        results: list[BaseException | None] = [None] * len(batch)
        queued: list[int] = []
        ttl = str(max(1, int(config.dedupe_ttl * 1000)))
        maxlen = str(config.maxlen) if config.maxlen is not None else ""
        pipe = self._client.pipeline(transaction=False)
        for index, envelope in enumerate(batch):
            trace = {
                "traceparent": make_traceparent(envelope.correlation_id),
                "x-correlation-id": envelope.correlation_id,
            }
            key = envelope.headers.get("idempotency-key")
            if key:
                trace["idempotency-key"] = key
            try:
                pairs = write_entry(envelope.payload, config.field, config.format, trace)
            except MessageError as exc:
                results[index] = exc
                continue
            keys = [config.stream] + ([self.dedupe_key(key)] if key else [])
            await self._script(keys=keys, args=[ttl, maxlen, *pairs], client=pipe)  # queues
            queued.append(index)
        if not queued:
            return results
        try:
            replies = await pipe.execute(raise_on_error=False)
        except connection_errors() as exc:
            error: MessageError = TransientError(
                f"XADD to {describe_url(config.url)} failed: {exc}"
            )
            for index in queued:
                results[index] = error
            return results
        except Exception as exc:  # a library error for the whole round trip
            error = translate_error(exc, f"XADD to stream {config.stream!r}")
            for index in queued:
                results[index] = error
            return results
        for index, reply in zip(queued, replies, strict=True):
            if isinstance(reply, BaseException):
                results[index] = translate_error(reply, f"XADD to stream {config.stream!r}")
            elif reply is None:
                self.duplicates += 1
        return results


SPEC = ComponentSpec(
    kind="sink",
    name="redis",
    config=RedisSinkConfig,
    factory=lambda config, context: RedisSink(config, context),
    summary="Append messages to a Redis stream (XADD), deduplicated by idempotency key.",
    description=(
        "Appends each message as one entry: the payload in `field` (JSON by default), or,"
        " with `field: null`, each top-level key of an object payload as its own field."
        " Every entry also carries `traceparent`, `x-correlation-id` and, when the flow"
        " declares one, `idempotency-key`. `maxlen` trims the stream approximately"
        " (`MAXLEN ~`) on every append.\n\n"
        "A message with an idempotency key is appended at most once within `dedupe_ttl`: a"
        " Lua script sets a dedupe key with `SET NX` and appends only when the key was new,"
        " atomically, so a retry after a lost reply or a replay does not add a second entry."
        " (A `MULTI` transaction cannot make the append depend on the `SET`; a script can.)"
        " The dedupe key shares the stream's cluster slot.\n\n"
        "An unreachable Redis, an out-of-memory reply or a failover is retried; any other"
        " error reply (the key holds another type) dead-letters the message."
    ),
    examples=[
        "redis: {stream: erp-orders}",
        "redis: {url: 'redis://:${secret:REDIS_PASSWORD}@cache:6379/0', stream: events,"
        " maxlen: 100000, dedupe_ttl: 24h}",
    ],
    extra="redis",
    modules=("redis",),
)
