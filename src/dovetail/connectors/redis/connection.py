"""Connection settings shared by the ``redis`` source and sink, and Redis error translation."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from dovetail.config.fields import holds_reference
from dovetail.config.types import Duration
from dovetail.errors import MessageError, MissingExtraError, PermanentError, TransientError
from dovetail.plugins.spec import ComponentConfig

_TRANSIENT_REPLIES = ("OOM", "BUSY", "LOADING", "TRYAGAIN", "READONLY", "MASTERDOWN", "CLUSTERDOWN")
"""Error replies that a later attempt can get past (memory, scripts, failover, loading)."""


class RedisConnectionConfig(ComponentConfig):
    """Where Redis is (the fields every Redis component shares)."""

    url: str = "redis://127.0.0.1:6379/0"
    """Redis URL: `redis://[user:password@]host:port/db`, `rediss://` for TLS; put the password
    in a secret: `redis://:${secret:REDIS_PASSWORD}@cache:6379/0`."""
    stream: str
    """Name of the stream (its key)."""
    timeout: Duration = 10.0
    """Time allowed to connect and for each command (besides the blocking read's own wait)."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if holds_reference(value):
            return value
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"expected a redis://, rediss:// or unix:// URL, found {value!r}")
        return value

    @field_validator("stream")
    @classmethod
    def _check_stream(cls, value: str) -> str:
        if not value:
            raise ValueError("the stream name cannot be empty")
        return value


def import_redis() -> Any:
    """The ``redis.asyncio`` module; raises ``MissingExtraError`` naming the install command."""
    try:
        import redis.asyncio
    except ImportError:
        raise MissingExtraError("redis needs redis-py: pip install 'dovetail[redis]'") from None
    return redis.asyncio


def open_client(config: RedisConnectionConfig, *, read_wait: float = 0.0) -> Any:
    """A ``redis.asyncio.Redis`` for ``config.url`` returning bytes (payloads may be binary).

    ``read_wait`` is the longest server-side wait of a blocking command; the socket timeout
    allows for it on top of ``timeout``.
    """
    module = import_redis()
    return module.Redis.from_url(
        config.url,
        decode_responses=False,
        socket_connect_timeout=config.timeout,
        socket_timeout=config.timeout + read_wait,
        health_check_interval=30,
    )


def connection_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean Redis could not be reached or did not answer in time."""
    import redis.exceptions

    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


def translate_error(exc: BaseException, what: str) -> MessageError:
    """A Redis library error as ours: unreachable, timeouts and busy replies are transient."""
    import redis.exceptions

    if isinstance(exc, connection_errors()):
        return TransientError(f"{what}: Redis unreachable: {exc}")
    if isinstance(exc, redis.exceptions.ResponseError):
        text = str(exc)
        if text.upper().startswith(_TRANSIENT_REPLIES):
            return TransientError(f"{what}: {text}")
        return PermanentError(f"{what}: {text}")
    if isinstance(exc, redis.exceptions.RedisError):
        return TransientError(f"{what}: {type(exc).__name__}: {exc}")
    return PermanentError(f"{what}: {type(exc).__name__}: {exc}")


def describe_url(url: str) -> str:
    """``url`` without its credentials, for log lines and errors."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    host = rest.rsplit("@", 1)[-1]
    return f"{scheme}://{host}"
