"""The embedded HTTP server of the ``http`` (webhook) and ``api`` sources: uvicorn, guarded.

``serve(app, sock, config)`` runs an ASGI app on a bound socket inside the flow's event loop
until cancelled, then shuts down gracefully: it stops accepting, lets requests under way
finish for up to ``shutdown_timeout`` and closes the socket. The runtime, not uvicorn, owns
the process signals.

The HTTP/1.1 parser is httptools (C) where it is installed, else h11 (pure Python); see
``HTTP_PARSER``. Guards against slow and idle clients (``ServerConfig``), enforced per
connection by the protocol class of either parser before the app sees a request:

- the request line and headers must arrive within ``header_timeout`` of the connection (or,
  on a kept-alive connection, of the request's first byte): ``408``, then the connection is
  closed; sending them byte by byte does not extend the deadline;
- the body must arrive within ``body_timeout`` of the headers: ``408`` (or the connection is
  just closed when the app already answered);
- an idle kept-alive connection is closed after ``idle_timeout``;
- beyond ``max_connections`` open connections a new one is answered ``503`` with
  ``Retry-After`` and closed at once, without reading from it;
- a request the HTTP parser rejects gets ``400``.

Every such answer is RFC 9457 ``application/problem+json`` with an ``x-correlation-id``
header and ``connection: close``. uvicorn reads at most 64 KiB of a body ahead of the app,
so an app that refuses a request before reading its body buffers no more than that.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
from collections.abc import Generator
from http import HTTPStatus
from typing import Any, Literal

import anyio
import h11
import orjson
import uvicorn
from pydantic import Field
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is not installed on this platform: h11 it is
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

from dovetail.config.types import Duration
from dovetail.core.ids import new_trace_id
from dovetail.plugins.spec import ComponentConfig


class ServerConfig(ComponentConfig):
    max_connections: int = Field(default=256, ge=1)
    """Most connections open at once; a connection beyond it is answered `503` with
    `Retry-After: 1` and closed. Memory for bodies is bounded by this times the body limit."""
    header_timeout: Duration = Field(default=10.0, gt=0)
    """Time a client has to send the request line and headers, counted from the connection
    (or, on a kept-alive connection, from the request's first byte); then `408`."""
    body_timeout: Duration = Field(default=30.0, gt=0)
    """Time a client has to send the whole body once the headers are in; then `408`."""
    idle_timeout: Duration = Field(default=5.0, gt=0)
    """How long a kept-alive connection may stay idle between requests before it is closed
    (in whole seconds, at least 1)."""
    shutdown_timeout: Duration = Field(default=5.0, gt=0)
    """When the flow stops: how long requests under way may take to finish (in whole seconds,
    at least 1)."""


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: any free port) for uvicorn to serve on.

    Created with ``IPPROTO_TCP`` so asyncio enables ``TCP_NODELAY`` on accepted connections
    (without it, small responses wait ~40 ms for delayed ACKs).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def problem_bytes(status: int, detail: str, *, retry_after: int | None = None) -> bytes:
    """A complete HTTP/1.1 ``application/problem+json`` answer that closes the connection,
    for the connection guards (they answer before, or instead of, the app)."""
    body = orjson.dumps(_problem(status, detail))
    phrase = HTTPStatus(status).phrase
    head = [
        f"HTTP/1.1 {status} {phrase}",
        "content-type: application/problem+json",
        f"content-length: {len(body)}",
        "connection: close",
        f"x-correlation-id: {new_trace_id()}",
    ]
    if retry_after is not None:
        head.append(f"retry-after: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body


def _problem(status: int, detail: str) -> dict[str, Any]:
    title = HTTPStatus(status).phrase
    return {"type": "about:blank", "title": title, "status": status, "detail": detail}


class _GuardedConfig(uvicorn.Config):
    """uvicorn's settings plus ours, which each connection's protocol reads."""

    def __init__(self, app: ASGIApp, guards: ServerConfig) -> None:
        super().__init__(
            app,
            http=guarded_protocol(),
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,  # X-Forwarded-For is not trusted, and rewriting it costs
            timeout_keep_alive=max(1, round(guards.idle_timeout)),
            timeout_graceful_shutdown=max(1, round(guards.shutdown_timeout)),
        )
        self.guards = guards


class _ConnectionGuard:
    """The guards, mixed into a uvicorn HTTP protocol class (h11 or httptools): the
    connection cap on ``connection_made`` and one deadline at a time, header or body."""

    connections: set[Any]
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any

    def _guard(self, config: uvicorn.Config) -> None:
        self._guards = config.guards if isinstance(config, _GuardedConfig) else ServerConfig()
        self._refused = False
        self._phase: str | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def _refuse_over_cap(self, transport: asyncio.BaseTransport) -> bool:
        """Past ``max_connections``: answer ``503`` without reading, close, never count it."""
        if len(self.connections) < self._guards.max_connections:
            return False
        self._refused = True
        assert isinstance(transport, asyncio.Transport)
        transport.write(problem_bytes(503, "too many connections; retry later", retry_after=1))
        transport.close()
        return True

    def send_400_response(self, msg: str) -> None:
        """A request the parser rejected: ``400`` problem+json, then close."""
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(problem_bytes(400, "malformed HTTP request"))
            self.transport.close()

    def _arm(self, phase: str, timeout: float) -> None:
        if self._phase == phase:
            return  # a deadline, not an inactivity timer: more bytes do not extend it
        self._disarm()
        self._phase = phase
        self._deadline = self.loop.call_later(timeout, self._expire, phase)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._phase = None, None

    def _expire(self, phase: str) -> None:
        self._deadline, self._phase = None, None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if phase == "body" and cycle is not None:
            answered = cycle.response_started
            cycle.disconnected = True  # the app's reads end, its answer goes nowhere
            cycle.message_event.set()
            if answered:
                self.transport.close()
                return
        detail = f"the request {'headers' if phase == 'header' else 'body'} took too long"
        self.transport.write(problem_bytes(408, detail))
        self.transport.close()


class GuardedProtocol(_ConnectionGuard, H11Protocol):
    """uvicorn's h11 protocol (pure Python) with a connection cap and header and body
    deadlines; the fallback where httptools is not installed."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self._guard(config)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._refuse_over_cap(transport):
            return
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm("header", self._guards.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        self._watch()

    def eof_received(self) -> None:
        return None

    def shutdown(self) -> None:
        if not self._refused:
            super().shutdown()

    def _watch(self) -> None:
        """Arm the deadline of what the client is sending now, or disarm when it is done."""
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._arm("body", self._guards.body_timeout)
        elif state is h11.IDLE and (self.cycle is None or self.conn.trailing_data[0]):
            self._arm("header", self._guards.header_timeout)  # (the next) request's head
        else:
            self._disarm()


GuardedH11Protocol = GuardedProtocol
"""The h11 guarded protocol under the name of its parser."""


if HttpToolsProtocol is not None:

    class GuardedHttpToolsProtocol(_ConnectionGuard, HttpToolsProtocol):
        """uvicorn's httptools protocol (the C parser of Node.js) with the same guards: the
        header deadline runs from the connection, then from each request's first byte
        (``on_message_begin``), the body deadline from ``on_headers_complete`` until
        ``on_message_complete``."""

        def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
            super().__init__(config, *args, **kwargs)
            self._guard(config)

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            if self._refuse_over_cap(transport):
                return
            super().connection_made(transport)  # type: ignore[arg-type]
            self._arm("header", self._guards.header_timeout)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._refused:
                return
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if not self._refused:
                super().data_received(data)

        def shutdown(self) -> None:
            if not self._refused:
                super().shutdown()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm("header", self._guards.header_timeout)

        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            self._arm("body", self._guards.body_timeout)

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._disarm()


HTTP_PARSER: Literal["auto", "httptools", "h11"] = "auto"
"""Which HTTP/1.1 parser the embedded server uses: ``auto`` takes httptools where it is
installed and h11 otherwise (tests set it to run the guards against each)."""


def guarded_protocol() -> type[asyncio.Protocol]:
    """The guarded protocol class for ``HTTP_PARSER``; raises ``RuntimeError`` when
    httptools is asked for and not installed."""
    if HTTP_PARSER == "h11":
        return GuardedProtocol
    if HttpToolsProtocol is not None:
        return GuardedHttpToolsProtocol
    if HTTP_PARSER == "httptools":
        raise RuntimeError("the httptools parser is not installed")
    return GuardedProtocol


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside the flow's event loop: the runtime, not uvicorn, owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    @property
    def open_connections(self) -> int:
        return len(self.server_state.connections)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # Everything built so far (the flow, its components, the libraries) lives as long as
        # the process: freezing it keeps the garbage collector's full passes, which stop the
        # loop, to the objects created while serving (tens of ms each otherwise, the p99).
        gc.freeze()


def _quiet_disconnects(app: ASGIApp) -> ASGIApp:
    """A client that went away (or was cut off) mid-body is not an application error."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        with contextlib.suppress(ClientDisconnect):
            await app(scope, receive, send)

    return guarded


class EmbeddedServer:
    """One guarded uvicorn server on one socket; ``open_connections`` for tests and metrics."""

    def __init__(self, app: ASGIApp, sock: socket.socket, config: ServerConfig) -> None:
        self._server = _EmbeddedServer(_GuardedConfig(_quiet_disconnects(app), config))
        self._sock = sock
        self.config = config

    @property
    def open_connections(self) -> int:
        """Connections open now (refused ones are never counted)."""
        return self._server.open_connections

    async def serve(self) -> None:
        """Serve until cancelled; then shut down gracefully and close the socket."""
        server, sock = self._server, self._sock
        try:
            await server.serve(sockets=[sock])
        finally:
            server.should_exit = True
            limit = self.config.shutdown_timeout + 5
            with anyio.CancelScope(shield=True), anyio.move_on_after(limit):
                if server.started:
                    await server.shutdown(sockets=[sock])
            sock.close()
            if server.started:
                gc.unfreeze()  # what was built for serving may now be collected
