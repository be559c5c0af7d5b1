"""Config models of the ``kafka`` source and sink (their fields are the reference docs)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ByteSize, Field, SecretStr, field_validator, model_validator

from dovetail.config.fields import JsonataExpr, ProjectFile, holds_reference
from dovetail.config.types import Duration
from dovetail.plugins.spec import ComponentConfig
from dovetail.safety.limits import DEFAULT_MAX_DEPTH, DEFAULT_MAX_RECORD_BYTES

PayloadFormat = Literal["json", "text", "bytes-base64"]
"""How a record value maps to a payload: JSON, UTF-8 text, or any bytes as base64 text."""

_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_SERVER = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")


def _check_topic(value: str) -> str:
    if holds_reference(value) or _TOPIC.match(value):
        return value
    raise ValueError(f"{value!r} is not a Kafka topic name (letters, digits, '.', '_', '-')")


class KafkaConnectionConfig(ComponentConfig):
    """Connection fields common to the ``kafka`` source and sink."""

    bootstrap_servers: list[str] = Field(min_length=1)
    """Brokers to start from, as `host:port` (`["kafka-1:9092", "kafka-2:9092"]`)."""
    client_id: str = "dovetail"
    """The client id the brokers see in their logs and quotas."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """Transport security: TLS (`SSL`, `SASL_SSL`) and/or SASL login (`SASL_*`)."""
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    """SASL mechanism, required with `SASL_PLAINTEXT` and `SASL_SSL`."""
    sasl_username: str | None = None
    """SASL user name."""
    sasl_password: SecretStr | None = None
    """SASL password, e.g. `${secret:KAFKA_PASSWORD}`."""
    ssl_cafile: ProjectFile | None = None
    """CA bundle (PEM) in the project that signs the brokers' certificates. Default: the
    system's trusted CAs."""

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers(cls, value: list[str]) -> list[str]:
        for server in value:
            if not holds_reference(server) and not _SERVER.match(server):
                raise ValueError(f"expected host:port, found {server!r}")
        return value

    @model_validator(mode="after")
    def _sasl(self) -> KafkaConnectionConfig:
        uses_sasl = self.security_protocol.startswith("SASL_")
        if uses_sasl and (
            self.sasl_mechanism is None or not self.sasl_username or self.sasl_password is None
        ):
            raise ValueError(
                f"{self.security_protocol} needs sasl_mechanism, sasl_username and sasl_password"
            )
        if not uses_sasl and (self.sasl_mechanism or self.sasl_username or self.sasl_password):
            raise ValueError("sasl_* settings need security_protocol SASL_PLAINTEXT or SASL_SSL")
        return self

    def client_options(self, resolve: Any) -> dict[str, Any]:
        """Keyword arguments shared by aiokafka's consumer and producer.

        ``resolve`` maps a project-relative path to a real one (``BuildContext.resolve``).
        """
        options: dict[str, Any] = {
            "bootstrap_servers": list(self.bootstrap_servers),
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol.endswith("SSL"):
            from aiokafka.helpers import create_ssl_context  # type: ignore[import-untyped]

            cafile = str(resolve(self.ssl_cafile)) if self.ssl_cafile else None
            options["ssl_context"] = create_ssl_context(cafile=cafile)
        if self.sasl_mechanism is not None:
            assert self.sasl_password is not None
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password.get_secret_value()
        return options


class KafkaSourceConfig(KafkaConnectionConfig):
    topics: list[str] = Field(min_length=1)
    """Topics to consume."""
    group_id: str = Field(min_length=1)
    """Consumer group. Workers with the same group share the topics' partitions; offsets
    are committed for the group."""
    format: PayloadFormat = "json"
    """How a record value becomes the payload: `json`, `text` (UTF-8) or `bytes-base64`."""
    start_from: Literal["earliest", "latest"] = "earliest"
    """Where a group without committed offsets starts reading."""
    poll_timeout: Duration = 1.0
    """How long one poll waits for records before checking again."""
    max_record_bytes: ByteSize = ByteSize(DEFAULT_MAX_RECORD_BYTES)
    """Largest record value accepted, e.g. `256KiB`; larger records are dead-lettered."""
    max_depth: int = Field(default=DEFAULT_MAX_DEPTH, ge=1, le=1000)
    """Deepest nesting of JSON objects and arrays accepted."""
    session_timeout: Duration = 30.0
    """How long the group waits for a silent worker before giving its partitions away."""

    @field_validator("topics")
    @classmethod
    def _topics(cls, value: list[str]) -> list[str]:
        return [_check_topic(topic) for topic in value]


class KafkaSinkConfig(KafkaConnectionConfig):
    topic: str
    """Topic to produce to."""
    key: JsonataExpr | None = None
    """JSONata over the payload giving the record key (`order_id`): records with the same key
    go to the same partition, in order. Default: no key."""
    format: PayloadFormat = "json"
    """How the payload becomes the record value: `json`, `text` (a string payload) or
    `bytes-base64` (a base64 string payload, sent as its bytes)."""
    idempotence: bool = True
    """Idempotent producer: the brokers drop duplicates of a record resent after a timeout.
    Turn off only for brokers that do not support it."""
    compression: Literal["gzip"] | None = None
    """Compress record batches with gzip."""
    linger: Duration = 0.005
    """How long the producer waits to fill a record batch."""
    request_timeout: Duration = 30.0
    """Time allowed for the brokers to acknowledge a record batch (acks from all in-sync
    replicas)."""

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        return _check_topic(value)
