"""Broker settings shared by the ``mqtt`` source and sink, and the client they build from them."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from dovetail.config.types import Duration
from dovetail.errors import MissingExtraError
from dovetail.plugins.spec import ComponentConfig

if TYPE_CHECKING:
    import aiomqtt

Protocol = Literal["3.1.1", "5"]


class MqttConnectionConfig(ComponentConfig):
    """Where the broker is and how to log in (the fields every MQTT component shares)."""

    host: str = "127.0.0.1"
    """Broker host name or address."""
    port: int = Field(default=1883, ge=1, le=65535)
    """Broker port (1883 plain, 8883 usually TLS)."""
    username: str | None = None
    """User name, when the broker asks for one."""
    password: str | None = None
    """Password; use `${secret:NAME}`."""
    tls: bool = False
    """Connect with TLS, verifying the broker's certificate against the system trust store."""
    protocol: Protocol = "3.1.1"
    """MQTT protocol version: `3.1.1` or `5`. Version 5 carries `traceparent` and
    `x-correlation-id` as user properties."""
    keepalive: Duration = 60.0
    """Seconds between keep-alive pings when the connection is idle."""
    timeout: Duration = 10.0
    """Time allowed to connect, subscribe, or have a publish confirmed."""

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_as_text(cls, value: Any) -> Any:
        # YAML reads `protocol: 5` as a number
        return (
            str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        )


def import_aiomqtt() -> Any:
    """The ``aiomqtt`` module; raises ``MissingExtraError`` naming the install command."""
    try:
        import aiomqtt
    except ImportError:
        raise MissingExtraError("mqtt needs aiomqtt: pip install 'dovetail[mqtt]'") from None
    return aiomqtt


def make_client(
    config: MqttConnectionConfig,
    *,
    client_id: str | None,
    persistent: bool,
    session_expiry: float = 0.0,
    max_inflight: int | None = None,
) -> aiomqtt.Client:
    """An unconnected ``aiomqtt.Client`` for ``config``.

    ``persistent`` asks the broker to keep the session (subscriptions and unacknowledged
    QoS 1 messages) across disconnects: ``clean_session=false`` on 3.1.1; on 5, clean start
    off and a session expiry interval of ``session_expiry`` seconds.
    """
    module = import_aiomqtt()
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    options: dict[str, Any] = {}
    if config.protocol == "5":
        options["protocol"] = module.ProtocolVersion.V5
        options["clean_start"] = not persistent
        if persistent:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = int(session_expiry)
            if max_inflight is not None:
                properties.ReceiveMaximum = max_inflight
            options["properties"] = properties
    else:
        options["protocol"] = module.ProtocolVersion.V311
        options["clean_session"] = not persistent
    if config.tls:
        options["tls_context"] = ssl.create_default_context()
    client: aiomqtt.Client = module.Client(
        config.host,
        config.port,
        username=config.username,
        password=config.password,
        identifier=client_id,
        keepalive=max(1, int(config.keepalive)),
        timeout=config.timeout,
        max_inflight_messages=max_inflight,
        **options,
    )
    return client


def describe_broker(config: MqttConnectionConfig) -> str:
    """``mqtt://host:port`` for log lines and error messages (never the credentials)."""
    scheme = "mqtts" if config.tls else "mqtt"
    return f"{scheme}://{config.host}:{config.port}"
