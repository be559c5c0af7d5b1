"""``http`` source: a webhook receiver that answers only once a request is durably stored.

Request path, cheapest check first, each refusal an RFC 9457 problem+json with an
``x-correlation-id`` header: before the body is read, the declared ``Content-Length`` (413;
400 when malformed) and, with a ``signature`` block, the signature and timestamp headers
(401: missing, malformed or stale); then the body, read incrementally and cut off past
``max_body_bytes`` (413); then the signature itself (401; a replay is 409) and the body's
syntax (400); then ``store.inbox_put``. Only after the store committed does the caller get
``202 {"status": "accepted", "id": ..., "correlation_id": ...}``. A store failure answers 503
so the caller retries. Slow and idle clients are cut off by the embedded server
(``server.py``).

``run`` emits every inbox row it has not emitted yet, oldest first, and remembers it as in
flight until ``commit()`` deletes it once acked; rows left by a crash are emitted again on the
next start. The drain never relies on ids growing: a row committed after a newer-id row was
emitted is still found.
"""

from __future__ import annotations

import asyncio
import socket
from http import HTTPStatus
from typing import Literal

import anyio
import orjson
import structlog
from pydantic import Field, field_validator
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from dovetail.config.types import Duration
from dovetail.connectors.http.body import BodyTooLarge, declared_length, parse_body, read_body
from dovetail.connectors.http.server import EmbeddedServer, ServerConfig, bind_listener
from dovetail.connectors.http.signature import SignatureConfig, SignatureRejected, SignatureVerifier
from dovetail.core.ack import Settlement
from dovetail.core.component import BuildContext, Emit
from dovetail.core.envelope import Envelope, SourcePosition
from dovetail.core.ids import correlation_id_from_headers, uuid7
from dovetail.core.steps import mark_failed
from dovetail.errors import PayloadRejected, StoreError
from dovetail.plugins.spec import ComponentConfig, ComponentSpec
from dovetail.store.base import InboxItem

__all__ = ["WebhookConfig", "WebhookSource", "bind_listener", "parse_body", "problem"]

log = structlog.get_logger(__name__)

_DROPPED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "host", "content-length", "connection"}
    | {"keep-alive", "transfer-encoding", "te", "upgrade", "expect"}
)


class WebhookConfig(ComponentConfig):
    host: str = "127.0.0.1"
    """Interface to listen on; `0.0.0.0` to accept requests from other machines."""
    port: int = Field(default=0, ge=0, le=65535)
    """Port to listen on; 0 picks a free one."""
    path: str = "/"
    """URL path that receives the webhook."""
    methods: list[Literal["POST", "PUT", "PATCH"]] = Field(default=["POST"], min_length=1)
    """Accepted methods; others get 405."""
    max_body_bytes: int = Field(default=1_048_576, ge=1)
    """Largest accepted body; larger requests get 413."""
    format: Literal["json", "xml", "text"] = "json"
    """How the body is parsed: JSON, XML (kept as text, checked well-formed, refused with a
    DOCTYPE) or UTF-8 text."""
    max_depth: int = Field(default=64, ge=1, le=512)
    """Deepest nesting accepted in a JSON or XML body; deeper bodies get 400."""
    signature: SignatureConfig | None = None
    """HMAC verification of each request; without it every request is accepted."""
    batch_size: int = Field(default=100, ge=1)
    """Most messages handed to the flow at once."""
    poll_interval: Duration = 1.0
    """How often the inbox is checked besides being woken by each accepted request."""
    server: ServerConfig = ServerConfig()
    """Limits of the embedded HTTP server: connection cap, header, body and idle timeouts."""

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"path must start with '/', found {value!r}")
        return value


class WebhookSource:
    """Receives webhooks into the durable inbox and emits them to the flow.

    Ack contract: a message is acked when it is settled; ``commit()`` then deletes the acked
    inbox rows in one store call. In ``once`` mode no server is started: the pending inbox is
    drained and ``run`` returns.
    """

    def __init__(self, config: WebhookConfig, context: BuildContext) -> None:
        self.config = config
        self._flow = context.flow
        self._store = context.store
        self._once = context.once
        self._verifier = (
            SignatureVerifier.from_config(config.signature) if config.signature else None
        )
        self._socket: socket.socket | None = None
        self.server: EmbeddedServer | None = None
        """The embedded server while ``run`` serves requests."""
        self._wakeup = asyncio.Event()
        self._in_flight: set[int] = set()
        """Ids of rows emitted and not yet deleted: the drain skips them."""
        self._acked: list[int] = []
        self.port: int | None = None
        """The bound port once ``open()`` ran (``None`` in once mode)."""

    async def open(self) -> None:
        """Check the store and bind the listening socket (so ``port`` is known before ``run``)."""
        if self._store is None:
            raise StoreError("the http source needs a state store for its durable inbox")
        if self._once or self._socket is not None:
            return
        sock = bind_listener(self.config.host, self.config.port)
        self._socket = sock
        self.port = int(sock.getsockname()[1])

    async def run(self, emit: Emit) -> None:
        """Serve requests and emit stored messages until cancelled (once: drain and return)."""
        self._in_flight = set(self._acked)  # acked, not yet deleted: never emitted again
        if self._once:
            await self._drain(emit)
            return
        if self._socket is None:
            await self.open()
        async with anyio.create_task_group() as group:
            group.start_soon(self._serve)
            while True:
                await self._drain(emit)
                with anyio.move_on_after(self.config.poll_interval):
                    await self._wakeup.wait()

    async def commit(self) -> None:
        """Delete the inbox rows of acked messages, in one store call."""
        if not self._acked:
            return
        assert self._store is not None
        ids, self._acked = self._acked, []
        try:
            await self._store.inbox_delete(ids)
        except BaseException:
            self._acked[:0] = ids
            raise
        self._in_flight.difference_update(ids)

    async def close(self) -> None:
        """Release the socket if the server never took it over."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def app(self) -> ASGIApp:
        """The ASGI app that receives webhooks (also usable under another server).

        A request to the webhook's path with an accepted method goes straight to the
        handler; anything else goes through Starlette's routing for its 404 or 405."""
        route = Route(self.config.path, self._receive, methods=list(self.config.methods))
        routing = Starlette(routes=[route], exception_handlers={HTTPException: _routing_problem})
        path, methods = self.config.path, frozenset(self.config.methods)
        receive_webhook = self._receive

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"] == path and scope["method"] in methods:
                response = await receive_webhook(Request(scope, receive))
                await response(scope, receive, send)
            else:
                await routing(scope, receive, send)

        return app

    async def _serve(self) -> None:
        assert self._socket is not None
        self.server = EmbeddedServer(self.app(), self._socket, self.config.server)
        try:
            await self.server.serve()
        finally:
            self._socket = None
            self.server = None

    async def _drain(self, emit: Emit) -> None:
        store = self._store
        assert store is not None
        while True:
            self._wakeup.clear()
            skip = frozenset(self._in_flight)
            items = await store.inbox_pending(self._flow, self.config.batch_size, skip)
            if not items:
                return
            self._in_flight.update(item.id for item in items)
            await emit([self._envelope(item) for item in items])

    def _envelope(self, item: InboxItem) -> Envelope:
        inbox_id = item.id

        async def ack() -> None:
            self._acked.append(inbox_id)

        headers = dict(item.headers)
        envelope = Envelope(
            payload=None,
            settlement=Settlement(ack),
            correlation_id=headers.get("x-correlation-id") or correlation_id_from_headers(headers),
            headers=headers,
            position=SourcePosition(kind="webhook", ref=f"inbox:{inbox_id}"),
        )
        try:
            envelope.payload = parse_body(item.payload, self.config.format, self.config.max_depth)
        except PayloadRejected as exc:
            envelope.payload = item.payload.decode("utf-8", errors="replace")
            mark_failed(envelope, "source", exc)
        envelope.original = envelope.payload
        return envelope

    async def _receive(self, request: Request) -> Response:
        incoming = {key.lower(): value for key, value in request.headers.items()}
        correlation_id = correlation_id_from_headers(incoming)
        try:
            body = await self._read_checked(request)
        except SignatureRejected as exc:
            return problem(exc.status, exc.reason, correlation_id, close=True)
        except BodyTooLarge as exc:
            return problem(413, exc.reason, correlation_id, close=True)
        except PayloadRejected as exc:
            return problem(400, exc.reason, correlation_id, close=True)
        verifier, digest = self._verifier, None
        if verifier is not None and self.config.signature is not None:
            signature = self.config.signature
            try:
                digest = verifier.verify(
                    request.headers.get(signature.header),
                    request.headers.get(signature.timestamp_header),
                    body,
                )
            except SignatureRejected as exc:
                return problem(exc.status, exc.reason, correlation_id)
        accepted = False
        try:
            response = await self._accept(incoming, body, correlation_id)
            accepted = response.status_code == 202
            return response
        finally:
            if verifier is not None and digest is not None and not accepted:
                verifier.forget(digest)  # not stored: the sender's retry is not a replay

    async def _read_checked(self, request: Request) -> bytes:
        """The body, once what the headers tell was checked: its declared length and, when
        signed requests are required, the signature headers' presence and freshness."""
        limit = self.config.max_body_bytes
        declared = declared_length(request.headers.get("content-length"))
        if declared is not None and declared > limit:
            raise BodyTooLarge(limit)
        if self._verifier is not None and self.config.signature is not None:
            signature = self.config.signature
            self._verifier.check_headers(
                request.headers.get(signature.header),
                request.headers.get(signature.timestamp_header),
            )
        return await read_body(request.stream(), limit)

    async def _accept(self, incoming: dict[str, str], body: bytes, correlation_id: str) -> Response:
        try:
            parse_body(body, self.config.format, self.config.max_depth)
        except PayloadRejected as exc:
            return problem(400, exc.reason, correlation_id)
        request_id = uuid7()
        dropped = _DROPPED_HEADERS
        if self.config.signature is not None:
            signature = self.config.signature
            dropped = dropped | {signature.header.lower(), signature.timestamp_header.lower()}
        headers = {key: value for key, value in incoming.items() if key not in dropped}
        headers["x-correlation-id"] = correlation_id
        headers["x-request-id"] = request_id
        assert self._store is not None
        try:
            inbox_id = await self._store.inbox_put(self._flow, body, headers, ref=request_id)
        except Exception as exc:  # any store failure: the caller must retry, nothing was kept
            log.error("webhook inbox write failed", flow=self._flow, error=type(exc).__name__)
            detail = "the message could not be stored; retry later"
            return problem(503, detail, correlation_id, retry_after=1)
        self._wakeup.set()
        accepted = {
            "status": "accepted",
            "id": inbox_id,
            "correlation_id": correlation_id,
            "request_id": request_id,
        }
        ids = {"x-correlation-id": correlation_id, "x-request-id": request_id}
        return Response(orjson.dumps(accepted), 202, headers=ids, media_type="application/json")


async def _routing_problem(request: Request, exc: Exception) -> Response:
    """Another path (404) or method (405): a problem+json answer like every other refusal."""
    status = exc.status_code if isinstance(exc, HTTPException) else 400
    incoming = {key.lower(): value for key, value in request.headers.items()}
    response = problem(status, HTTPStatus(status).phrase, correlation_id_from_headers(incoming))
    if isinstance(exc, HTTPException) and exc.headers:
        response.headers.update(exc.headers)  # 405: Allow
    return response


def problem(
    status: int,
    detail: str,
    correlation_id: str | None = None,
    *,
    retry_after: int | None = None,
    close: bool = False,
) -> Response:
    """An RFC 9457 ``application/problem+json`` response, with the request's correlation id
    in ``x-correlation-id``; ``close`` ends the connection (the body was not read)."""
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status}
    body["detail"] = detail
    headers: dict[str, str] = {}
    if correlation_id is not None:
        headers["x-correlation-id"] = correlation_id
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    if close:
        headers["connection"] = "close"
    return Response(
        orjson.dumps(body), status, headers=headers, media_type="application/problem+json"
    )


SPEC = ComponentSpec(
    kind="source",
    name="http",
    config=WebhookConfig,
    factory=lambda config, context: WebhookSource(config, context),
    summary="Receive webhooks: verify, store durably, answer 202, then process.",
    description=(
        "Each request is checked (size, HMAC signature and timestamp, body syntax) and"
        " written to the durable inbox in the state store before the caller gets"
        " `202 Accepted` with the inbox id and correlation id. Nothing is lost if the process"
        " dies right after answering: stored messages are processed on the next start.\n\n"
        "What the headers tell is checked before the body is read: a `Content-Length` over"
        " `max_body_bytes` gets 413 and, with a `signature` block, a missing signature or a"
        " missing, malformed or stale timestamp gets 401, each without reading the body. A"
        " body without a declared length is read chunk by chunk and cut off at the limit.\n\n"
        "Answers: 400 malformed, too deeply nested or (XML) DOCTYPE-carrying body or a"
        " malformed `Content-Length`, 401 missing or wrong signature or a missing, malformed"
        " or stale timestamp, 408 headers or body sent too slowly, 409 a replayed signature,"
        " 413 body too large, 503 the store could not take the message or too many"
        " connections (the caller should retry); a request to another path gets 404, another"
        " method 405. Errors are RFC 9457 problem+json, and every answer carries"
        " `x-correlation-id`.\n\n"
        'Signatures: `HMAC-SHA256(secret, "{timestamp}.{body}")` in the `x-signature` header'
        " as `sha256=<hex>`, with the Unix time (ASCII digits) in `x-timestamp`. The"
        " correlation id comes from the caller's `traceparent` or `x-correlation-id`.\n\n"
        "Requests that arrive together share a store commit (group commit: one transaction,"
        " and with SQLite one disk flush, for all the requests that came in while the"
        " previous commit ran); each"
        " caller gets its `202` only after the commit holding its own request, and a failed"
        " commit answers `503` to exactly the requests in it. The server uses the httptools"
        " parser on uvloop where they are installed, h11 on asyncio otherwise.\n\n"
        "Slow and idle clients: `server` caps open connections (`max_connections`, 256)"
        " and gives each request `header_timeout` (10 s) for its headers and `body_timeout`"
        " (30 s) for its body; an idle kept-alive connection is closed after `idle_timeout`"
        " (5 s)."
    ),
    examples=[
        "http: {port: 8080, path: /hooks/orders}",
        "http:\n  port: 8080\n  path: /hooks/orders\n  signature:\n"
        "    secret: ${secret:SHOP_WEBHOOK_SECRET}\n    tolerance: 5m",
    ],
)
