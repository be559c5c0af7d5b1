"""Translating aiokafka's exceptions into ours, once, at the connector's boundary."""

from __future__ import annotations

from dovetail.errors import DovetailError, PermanentError, TransientError


class KafkaConnectError(DovetailError):
    """The brokers could not be reached, or refused the login or the TLS handshake."""


_PERMANENT = (
    "MessageSizeTooLargeError",
    "RecordTooLargeError",
    "InvalidTopicError",
    "TopicAuthorizationFailedError",
    "ClusterAuthorizationFailedError",
    "UnsupportedVersionError",
)


def translate(exc: BaseException, action: str) -> PermanentError | TransientError:
    """A producer failure as ours: a record the brokers can never take (too large, topic
    invalid or forbidden) is permanent; everything else (timeouts, leader changes, lost
    connections) is transient."""
    name = type(exc).__name__
    reason = f"{action}: {name}: {exc}".rstrip(": ")
    if name in _PERMANENT:
        return PermanentError(reason)
    return TransientError(reason)


def missing_extra() -> DovetailError:
    """The error raised when aiokafka is not installed."""
    from dovetail.errors import MissingExtraError

    return MissingExtraError("kafka needs aiokafka: pip install 'dovetail[kafka]'")
