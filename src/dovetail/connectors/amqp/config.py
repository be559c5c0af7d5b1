"""Config models of the ``amqp`` source and sink (their fields are the reference docs)."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import ByteSize, Field, field_validator, model_validator

from dovetail.config.fields import JsonataExpr, holds_reference
from dovetail.config.types import Duration
from dovetail.plugins.spec import ComponentConfig
from dovetail.safety.limits import DEFAULT_MAX_DEPTH, DEFAULT_MAX_RECORD_BYTES

PayloadFormat = Literal["json", "text", "bytes-base64"]
"""How a message body maps to a payload: JSON, UTF-8 text, or any bytes as base64 text."""

ArgumentValue = str | int | bool


def check_amqp_url(value: str) -> str:
    """An ``amqp://`` or ``amqps://`` URL with a host (unresolved references pass through)."""
    if holds_reference(value):
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise ValueError(
            f"expected an amqp:// or amqps:// URL with a host, found {describe_url(value)!r}"
        )
    return value


def describe_url(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return parts._replace(netloc=f"{user}:***@{host}{port}").geturl()


class AmqpConnection(ComponentConfig):
    """Connection settings shared by the ``amqp`` source and sink."""

    url: str
    """Broker URL, `amqp://user:password@host:5672/vhost` (`amqps://` for TLS); query options
    such as `?heartbeat=30` are passed to the client. Keep the password in a secret:
    `${secret:AMQP_URL}`."""
    connect_timeout: Duration = 10.0
    """Time allowed to open the connection."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return check_amqp_url(value)


class Binding(ComponentConfig):
    """Binds the source's queue to an exchange."""

    exchange: str = Field(min_length=1)
    """Exchange to bind the queue to."""
    routing_key: str = "#"
    """Binding key: a routing key, or a pattern with `*` and `#` for topic exchanges."""
    exchange_type: Literal["direct", "topic", "fanout", "headers"] | None = None
    """When set, the exchange is declared (durable) with this type if it does not exist."""


class AmqpSourceConfig(AmqpConnection):
    queue: str = Field(min_length=1, max_length=255)
    """Queue to consume. Several processes consuming the same queue share its messages
    (competing consumers)."""
    prefetch: int = Field(default=400, ge=1, le=65535)
    """Most messages the broker hands to this consumer before they are acknowledged (QoS).
    Must be at least `batch_size`; about `batch_size` times the flow's workers plus one keeps
    the flow busy."""
    batch_size: int = Field(default=100, ge=1, le=65535)
    """Most messages handed to the flow at once."""
    batch_timeout: Duration = 0.2
    """Longest wait for a batch to fill once its first message arrived."""
    format: PayloadFormat = "json"
    """How the message body is read: `json`, `text` (UTF-8), or `bytes-base64` (any bytes,
    as base64 text). A body that cannot be read is dead-lettered and acknowledged."""
    max_message_bytes: ByteSize = ByteSize(DEFAULT_MAX_RECORD_BYTES)
    """Largest body accepted, e.g. `256KiB`; larger messages are dead-lettered."""
    max_depth: int = Field(default=DEFAULT_MAX_DEPTH, ge=1, le=1000)
    """Deepest nesting of objects and arrays accepted in a JSON body."""
    declare: bool = False
    """Declare the queue when it does not exist. Without it, a missing queue stops the flow
    at start."""
    queue_type: Literal["classic", "quorum"] = "classic"
    """Type of a declared queue: `classic`, or `quorum` (replicated; always durable)."""
    durable: bool = True
    """Whether a declared classic queue survives a broker restart."""
    arguments: dict[str, ArgumentValue] = Field(default_factory=dict)
    """Extra arguments of a declared queue, e.g. `x-dead-letter-exchange: orders.dlx`."""
    bind: list[Binding] = Field(default_factory=list)
    """Bindings of the queue to exchanges, made at start (binding is idempotent)."""
    reconnect_delay: Duration = 1.0
    """First wait before reconnecting after the connection is lost (doubles up to 30 s)."""

    @model_validator(mode="after")
    def _check_sizes(self) -> AmqpSourceConfig:
        if self.batch_size > self.prefetch:
            raise ValueError(
                f"batch_size ({self.batch_size}) cannot be larger than prefetch"
                f" ({self.prefetch}): the broker never hands out more than prefetch messages"
            )
        if self.queue_type == "quorum" and not self.durable:
            raise ValueError("quorum queues are always durable; remove `durable: false`")
        return self


class AmqpSinkConfig(AmqpConnection):
    exchange: str = ""
    """Exchange to publish to; `""` is the default exchange, which routes by queue name."""
    routing_key: str | None = None
    """Static routing key (with the default exchange: the target queue's name)."""
    routing_key_expression: JsonataExpr | None = None
    """JSONata expression over the payload giving each message's routing key, e.g.
    `'"orders." & region'`."""
    format: PayloadFormat = "json"
    """How the payload is written: `json`, `text` (a string payload as UTF-8), or
    `bytes-base64` (a base64 string payload, decoded to bytes)."""
    persistent: bool = True
    """Publish with delivery mode 2, so durable queues keep the message across broker
    restarts."""
    mandatory: bool = True
    """Ask the broker to return messages no queue receives; they are dead-lettered as
    unroutable instead of being dropped silently."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra AMQP headers on every message."""
    timeout: Duration = 30.0
    """Time allowed for the broker to confirm a batch."""

    @model_validator(mode="after")
    def _check_routing(self) -> AmqpSinkConfig:
        if (self.routing_key is None) == (self.routing_key_expression is None):
            raise ValueError("set exactly one of `routing_key` and `routing_key_expression`")
        if self.routing_key is not None and len(self.routing_key.encode()) > 255:
            raise ValueError("a routing key is at most 255 bytes")
        return self
