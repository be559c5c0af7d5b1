"""Opening AMQP connections, and translating the client's exceptions into ours, once.

``aio_pika`` is imported here only when a connection is opened, so the registry loads without
the ``amqp`` extra.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from dovetail.connectors.amqp.config import AmqpConnection, describe_url
from dovetail.errors import MessageError, MissingExtraError, PermanentError, TransientError

if TYPE_CHECKING:
    from aio_pika.abc import AbstractConnection


def import_aio_pika() -> None:
    """Raise ``MissingExtraError`` with the install command when aio-pika is missing."""
    try:
        import aio_pika  # noqa: F401
    except ImportError:
        raise MissingExtraError(
            "the amqp connector needs aio-pika: pip install 'dovetail[amqp]'"
        ) from None


async def open_connection(config: AmqpConnection, *, name: str) -> AbstractConnection:
    """Connect to the broker of ``config``; ``name`` shows in the management UI.

    Raises ``TransientError`` when the broker cannot be reached or refuses the login.
    """
    import_aio_pika()
    import aio_pika

    try:
        return await aio_pika.connect(
            config.url,
            timeout=config.connect_timeout,
            client_properties={"connection_name": name},
        )
    except Exception as exc:
        raise classify_error(exc, f"connecting to {describe_url(config.url)}") from None


def classify_error(error: BaseException, doing: str) -> MessageError:
    """Our error for an exception raised by aio-pika/aiormq while ``doing`` something.

    Unroutable (returned) messages, missing exchanges or queues, refused access and
    mismatched declarations are permanent; a broker nack, a lost connection or channel,
    timeouts and a refused login (credentials may be rotated while a flow runs) are
    transient.
    """
    from aiormq import exceptions as amqp
    from pamqp.commands import Basic

    if isinstance(error, MessageError):
        return error
    text = str(error) or type(error).__name__
    if isinstance(error, amqp.PublishError) and isinstance(error.frame, Basic.Return):
        frame = error.frame
        return PermanentError(
            f"unroutable: the broker returned the message ({frame.reply_code}"
            f" {frame.reply_text}): no queue is bound to exchange {frame.exchange!r} with"
            f" routing key {frame.routing_key!r}"
        )
    if isinstance(error, amqp.DeliveryError):
        return TransientError(f"the broker refused the message (nack) while {doing}")
    if isinstance(
        error,
        amqp.ChannelNotFoundEntity | amqp.ChannelAccessRefused | amqp.ChannelPreconditionFailed,
    ):
        return PermanentError(f"{doing}: the broker answered {text}")
    if isinstance(error, amqp.ProbableAuthenticationError | amqp.AuthenticationError):
        return TransientError(f"{doing}: the broker refused the login ({text})")
    if isinstance(error, amqp.InvalidFrameError) and "Connection.Close" in text:
        return TransientError(f"{doing}: the broker closed the connection (unknown vhost?)")
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return TransientError(f"{doing}: timed out")
    if isinstance(
        error, amqp.AMQPError | amqp.ChannelInvalidStateError | ConnectionError | OSError
    ):
        return TransientError(f"{doing}: {text}")
    return PermanentError(f"{doing}: {type(error).__name__}: {text}")
