"""Connecting to NATS, the settings both NATS components share, and error translation.

nats-py is imported lazily (the ``nats`` extra), so the core installs without it. Library
exceptions become Dovetail errors here, once: ``translate_error`` for one message,
``NatsUnavailable`` for the connection as a whole.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import anyio
import structlog
from pydantic import Field, field_validator

from dovetail.config.fields import ProjectFile, holds_reference
from dovetail.config.types import Duration
from dovetail.errors import DovetailError, MessageError, PermanentError, TransientError
from dovetail.plugins.spec import ComponentConfig

if TYPE_CHECKING:
    from nats.aio.client import Client

log = structlog.get_logger("dovetail.connectors.nats")
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_USERINFO = re.compile(r"//[^/@,]*@")
_SCHEMES = ("nats://", "tls://", "ws://", "wss://")


class NatsUnavailable(DovetailError):
    """The NATS server cannot be reached, or refused the stream or consumer set-up."""


class NatsConnectionConfig(ComponentConfig):
    """Connection settings shared by the ``nats`` source and sink."""

    url: str = "nats://127.0.0.1:4222"
    """Server URL; several servers of one cluster separated by commas
    (`nats://n1:4222,nats://n2:4222`). `tls://` connects with TLS."""
    user: str | None = None
    """User name, with `password` (use `${secret:...}`)."""
    password: str | None = None
    """Password for `user`."""
    token: str | None = None
    """Authentication token, instead of user and password."""
    credentials: ProjectFile | None = None
    """A `.creds` file (JWT and NKey seed) for decentralised authentication."""
    connect_timeout: Duration = Field(default=5.0, gt=0)
    """Time allowed to connect to a server."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if holds_reference(value):
            return value
        for server in split_servers(value):
            if not server.startswith(_SCHEMES):
                raise ValueError(
                    "expected a nats://host:port URL (or tls://, ws://, wss://),"
                    f" found {redact(server)!r}"
                )
        return value


def split_servers(url: str) -> list[str]:
    """The server URLs in a comma-separated ``url``."""
    return [part.strip() for part in url.split(",") if part.strip()]


def redact(url: str) -> str:
    """``url`` with any ``user:password@`` replaced, safe for logs and errors."""
    return _USERINFO.sub("//***@", url)


def check_name(value: str, what: str) -> str:
    """A stream or consumer name: letters, digits, ``-`` and ``_`` only."""
    if holds_reference(value):
        return value
    if not _NAME.match(value):
        raise ValueError(
            f"{what} may hold only letters, digits, '-' and '_' (no dots, spaces or"
            f" wildcards), found {value!r}"
        )
    return value


def subject_problem(subject: str, *, wildcards: bool) -> str | None:
    """Why ``subject`` is not a usable subject, or ``None`` when it is."""
    if not subject:
        return "the subject is empty"
    if any(ch.isspace() for ch in subject):
        return f"subject {subject!r} contains white space"
    tokens = subject.split(".")
    if any(token == "" for token in tokens):
        return f"subject {subject!r} has an empty token (a leading, trailing or double dot)"
    for index, token in enumerate(tokens):
        if token in ("*", ">") or "*" in token or ">" in token:
            if not wildcards:
                return f"subject {subject!r} contains a wildcard; a publish needs a full subject"
            if token not in ("*", ">") or (token == ">" and index != len(tokens) - 1):
                return f"subject {subject!r} uses a wildcard in the wrong place"
    return None


async def connect(config: NatsConnectionConfig, *, name: str) -> Client:
    """An open connection to the configured servers.

    Raises ``NatsUnavailable`` when no server can be reached (each is tried twice) or
    authentication fails. Once connected, the client reconnects by itself for as long as it
    takes; publishes and acks made meanwhile are buffered.
    """
    import nats
    from nats.errors import Error as NatsError

    options: dict[str, object] = {
        "servers": split_servers(config.url),
        "name": name,
        "connect_timeout": config.connect_timeout,
        "max_reconnect_attempts": 1,  # the first connect fails fast: each server twice
        "reconnect_time_wait": 1,
    }
    problems: list[str] = []
    shown = redact(config.url)

    async def report(error: Exception) -> None:
        problems.append(describe(error))
        log.warning("NATS connection problem", servers=shown, error=problems[-1])

    options["error_cb"] = report
    if config.user is not None:
        options["user"] = config.user
        options["password"] = config.password
    if config.token is not None:
        options["token"] = config.token
    if config.credentials is not None:
        options["user_credentials"] = config.credentials
    try:
        return await nats.connect(**options)  # type: ignore[arg-type]
    except (NatsError, OSError) as exc:
        why = problems[-1] if problems else describe(exc)
        raise NatsUnavailable(f"cannot connect to NATS at {shown}: {why}") from None


async def close_client(client: Client) -> None:
    """Flush what was published (acks, messages) and close, within a few seconds."""
    from nats.errors import Error as NatsError

    with anyio.CancelScope(shield=True), anyio.move_on_after(5):
        try:
            if client.is_connected:
                await client.flush(timeout=3)
        except (NatsError, TimeoutError) as exc:
            log.warning("NATS flush on close failed", error=describe(exc))
        finally:
            await client.close()


def describe(error: BaseException) -> str:
    """A short description of a nats-py exception (its text, else its class name)."""
    text = str(error).removeprefix("nats: ").strip()
    return text or type(error).__name__


def translate_error(error: BaseException, subject: str) -> MessageError:
    """The Dovetail error for a failed JetStream publish to ``subject``.

    Timeouts, no responders, connection loss and server-side 5xx are transient; a payload
    over the server's limit, a bad subject and other 4xx answers are permanent.
    """
    from nats.errors import (
        BadSubjectError,
        MaxPayloadError,
    )
    from nats.errors import (
        TimeoutError as NatsTimeout,
    )
    from nats.js.errors import APIError, NoStreamResponseError

    if isinstance(error, NatsTimeout | TimeoutError):
        return TransientError(f"no PubAck from JetStream for {subject!r} in time")
    if isinstance(error, NoStreamResponseError):
        return TransientError(f"no stream answered for subject {subject!r} (no responders)")
    if isinstance(error, MaxPayloadError):
        return PermanentError("the message is larger than the server's max_payload")
    if isinstance(error, BadSubjectError):
        return PermanentError(f"subject {subject!r} is not valid")
    if isinstance(error, APIError):
        reason = f"JetStream refused the message for {subject!r}: {error.description or error}"
        code = error.code or 0
        if code >= 500 or code in (408, 429, 503):
            return TransientError(reason)
        return PermanentError(reason)
    return TransientError(f"NATS publish to {subject!r} failed: {describe(error)}")
