"""A fault-injecting partner API: a real HTTP server for tests and demos.

``PartnerServer`` runs a small REST API on 127.0.0.1 (a free port) in a background thread:
an OAuth2 token endpoint (client credentials), resource endpoints (default ``/sales-orders``)
that record every request, and fault scripting::

    with PartnerServer(client_id="shop", client_secret="s3cret") as partner:
        partner.script("/sales-orders", [500, 429, "timeout", "reset", "slow:2s"])
        partner.faults(ratio=0.3, kinds=[500, 503, 429, "timeout"], seed=7)
        ...
        assert partner.duplicates("order_id") == 0

Responses: scripted ones first, in order, then random faults at ``ratio``, then success.
429 carries ``Retry-After``; ``"reset"`` aborts the TCP connection (RST); ``"timeout"`` hangs
for ``hang`` seconds (past any sane client timeout) and then answers 504 unprocessed;
``"slow:2s"`` waits, then processes the request normally. With ``conflict_on_duplicate_key``
set, a body whose key was already accepted gets 409. With ``failure_body``, a failed request is
answered with the text it returns for the request's headers (a partner echoing credentials).
``latency`` delays every resource answer (the partner's own processing time).

Run standalone: ``python -m dovetail.testing.partner --port 8765 --client-id ID --client-secret S``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import random
import secrets
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from dovetail.connectors.http.source import bind_listener

Fault = int | str
"""A scripted response: a status code, ``"timeout"``, ``"reset"`` or ``"slow:<duration>"``."""

RESOURCE_METHODS = ["POST", "PUT", "PATCH", "DELETE"]
_SUCCESS = {"POST": 201, "PUT": 200, "PATCH": 200, "DELETE": 204}


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the partner received and what it answered (``status`` None: no answer).

    ``time`` is when the request arrived and ``answered_at`` when the partner decided its
    answer (after any scripted delay), both ``time.time()`` seconds.
    """

    time: float
    answered_at: float
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    status: int | None
    fault: str | None = None

    @property
    def accepted(self) -> bool:
        """True when the partner processed the request (answered 2xx)."""
        return self.status is not None and 200 <= self.status < 300

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``raw`` decoded as text)."""
        return {
            "time": self.time,
            "answered_at": self.answered_at,
            "method": self.method,
            "path": self.path,
            "headers": self.headers,
            "body": self.body,
            "raw": self.raw.decode("utf-8", errors="replace"),
            "status": self.status,
            "fault": self.fault,
        }


@dataclass
class _FaultPlan:
    ratio: float
    kinds: list[Fault]
    rng: random.Random
    paths: set[str] | None = None


@dataclass
class _State:
    records: list[RecordedRequest] = field(default_factory=list)
    scripts: dict[str, list[Fault]] = field(default_factory=dict)
    plan: _FaultPlan | None = None
    accepted_keys: set[str] = field(default_factory=set)
    tokens: dict[str, float] = field(default_factory=dict)
    tokens_issued: int = 0


class _PartnerConfig(uvicorn.Config):
    transports: dict[tuple[str, int], asyncio.Transport]


class _TrackingH11Protocol(H11Protocol):
    """Remembers each connection's transport so a handler can reset it."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.client is not None and isinstance(self.config, _PartnerConfig):
            self.config.transports[self.client] = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client is not None and isinstance(self.config, _PartnerConfig):
            self.config.transports.pop(self.client, None)
        super().connection_lost(exc)


class PartnerServer:
    """The partner API in a background thread. Thread-safe; use as a context manager."""

    def __init__(
        self,
        *,
        port: int = 0,
        client_id: str | None = None,
        client_secret: str | None = None,
        paths: Sequence[str] = ("/sales-orders",),
        token_lifetime: float = 3600.0,
        conflict_on_duplicate_key: str | None = None,
        retry_after: int = 1,
        hang: float = 30.0,
        failure_body: Callable[[dict[str, str]], str] | None = None,
        latency: float = 0.0,
    ) -> None:
        self.port = port
        self.client_id = client_id
        self.client_secret = client_secret
        self.paths = tuple(paths)
        self.token_lifetime = token_lifetime
        self.conflict_on_duplicate_key = conflict_on_duplicate_key
        self.retry_after = retry_after
        self.hang = hang
        self.failure_body = failure_body
        self.latency = latency
        """Seconds every resource request takes before it is answered (its processing time)."""
        self._lock = threading.Lock()
        self._state = _State()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._config: _PartnerConfig | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:50123``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_url(self) -> str:
        """The OAuth2 token endpoint."""
        return f"{self.url}/oauth/token"

    def start(self) -> PartnerServer:
        """Bind a port and serve in a background thread; returns when it accepts requests."""
        sock = bind_listener("127.0.0.1", self.port)
        self.port = int(sock.getsockname()[1])
        config = _PartnerConfig(
            self.app(),
            lifespan="off",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            http=_TrackingH11Protocol,
            timeout_graceful_shutdown=1,
        )
        config.transports = {}
        self._config = config
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])), name="partner", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the partner server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving; hung requests are cut off after a second."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)
        self._server = self._thread = None

    def __enter__(self) -> PartnerServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- inspection and scripting ------------------------------------------------------------

    def requests(self, path: str | None = None) -> list[RecordedRequest]:
        """Every recorded request, oldest first; only those to ``path`` when given."""
        with self._lock:
            return [r for r in self._state.records if path is None or r.path == path]

    @property
    def request_count(self) -> int:
        """How many requests were recorded so far (cheap: for polling while a flow runs)."""
        with self._lock:
            return len(self._state.records)

    def received_bodies(self, path: str | None = None) -> list[Any]:
        """JSON bodies of the requests the partner accepted (answered 2xx), oldest first."""
        return [r.body for r in self.requests(path) if r.accepted and r.path != "/oauth/token"]

    def duplicates(self, key: str = "order_id", path: str | None = None) -> int:
        """How many distinct ``key`` values were accepted more than once."""
        counts: dict[str, int] = {}
        for body in self.received_bodies(path):
            if isinstance(body, dict) and key in body:
                value = str(body[key])
                counts[value] = counts.get(value, 0) + 1
        return sum(1 for count in counts.values() if count > 1)

    @property
    def tokens_issued(self) -> int:
        """How many access tokens the token endpoint handed out."""
        with self._lock:
            return self._state.tokens_issued

    def expire_tokens(self) -> None:
        """Make every issued token invalid now (clients still believe they are valid)."""
        with self._lock:
            self._state.tokens = dict.fromkeys(self._state.tokens, 0.0)

    def script(self, path: str, responses: Iterable[Fault]) -> None:
        """Answer the next requests to ``path`` with ``responses`` in order, then normally."""
        planned = [_check_fault(item) for item in responses]
        with self._lock:
            self._state.scripts.setdefault(path, []).extend(planned)

    def faults(
        self,
        ratio: float,
        kinds: Sequence[Fault] = (500, 503, 429, "timeout"),
        *,
        seed: int | None = None,
        paths: Iterable[str] | None = None,
    ) -> None:
        """Inject a random fault from ``kinds`` into a ``ratio`` of resource requests."""
        if not 0.0 <= ratio <= 1.0:
            raise ValueError("ratio must be between 0 and 1")
        plan = _FaultPlan(ratio, [_check_fault(k) for k in kinds], random.Random(seed))
        plan.paths = set(paths) if paths is not None else None
        with self._lock:
            self._state.plan = plan if ratio > 0 else None

    def reset(self) -> None:
        """Forget recorded requests, scripts, faults and accepted keys (tokens stay valid)."""
        with self._lock:
            tokens = self._state.tokens
            self._state = _State(tokens=tokens)

    # -- the ASGI app ------------------------------------------------------------------------

    def app(self) -> Starlette:
        """The partner's Starlette app."""
        routes = [
            Route("/oauth/token", self._token, methods=["POST"]),
            Route("/_partner/requests", self._list_requests, methods=["GET"]),
        ]
        routes += [Route(p, self._resource, methods=RESOURCE_METHODS) for p in self.paths]
        return Starlette(routes=routes)

    async def _list_requests(self, request: Request) -> Response:
        path = request.query_params.get("path")
        return JSONResponse([r.as_dict() for r in self.requests(path)])

    async def _token(self, request: Request) -> Response:
        request.state.arrived = time.time()
        raw = await request.body()
        fault = self._next_fault(request.url.path, random_faults=False)
        if isinstance(fault, str) and fault.startswith("slow:"):
            await asyncio.sleep(_seconds(fault[5:]))
        elif fault is not None:
            return await self._fail(request, raw, None, fault)
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", errors="replace")).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(basic[6:], validate=True).decode("utf-8")
            except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
                decoded = ""
            client_id, _, client_secret = decoded.partition(":")
        answer: dict[str, Any]
        if form.get("grant_type") != "client_credentials":
            status, answer = 400, {"error": "unsupported_grant_type"}
        elif (client_id, client_secret) != (self.client_id, self.client_secret):
            status, answer = 401, {"error": "invalid_client"}
        else:
            token = secrets.token_urlsafe(24)
            with self._lock:
                self._state.tokens[token] = time.monotonic() + self.token_lifetime
                self._state.tokens_issued += 1
            status = 200
            lifetime = int(self.token_lifetime)
            answer = {"access_token": token, "token_type": "Bearer", "expires_in": lifetime}
        self._record(request, raw, None, status)
        return JSONResponse(answer, status_code=status)

    async def _resource(self, request: Request) -> Response:
        request.state.arrived = time.time()
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        if self.client_id is not None and not self._authorized(request):
            self._record(request, raw, body, 401)
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        fault = self._next_fault(request.url.path, random_faults=True)
        if isinstance(fault, str) and fault.startswith("slow:"):
            await asyncio.sleep(_seconds(fault[5:]))
        elif fault is not None and not (isinstance(fault, int) and 200 <= fault < 300):
            return await self._fail(request, raw, body, fault)
        key = self.conflict_on_duplicate_key
        if key is not None and isinstance(body, dict) and key in body:
            with self._lock:
                seen = str(body[key]) in self._state.accepted_keys
                self._state.accepted_keys.add(str(body[key]))
            if seen:
                self._record(request, raw, body, 409)
                return JSONResponse({"error": f"duplicate {key}"}, status_code=409)
        status = fault if isinstance(fault, int) else _SUCCESS.get(request.method, 200)
        record = self._record(request, raw, body, status)
        if status == 204:
            return Response(status_code=204)
        return JSONResponse({"received": True, "at": record.answered_at}, status_code=status)

    async def _fail(self, request: Request, raw: bytes, body: Any, fault: Fault) -> Response:
        if fault == "reset":
            self._record(request, raw, body, None, "reset")
            self._reset_connection(request)
            await asyncio.sleep(0.05)  # let the server notice the connection is gone
            return Response(status_code=500)
        if fault == "timeout":
            self._record(request, raw, body, None, "timeout")
            await asyncio.sleep(self.hang)
            return Response(status_code=504)
        assert isinstance(fault, int)
        self._record(request, raw, body, fault, "scripted")
        headers = {"retry-after": str(self.retry_after)} if fault == 429 else None
        if self.failure_body is not None:
            received = {k.lower(): v for k, v in request.headers.items()}
            text = self.failure_body(received)
            return PlainTextResponse(text, status_code=fault, headers=headers)
        return JSONResponse({"error": f"scripted {fault}"}, status_code=fault, headers=headers)

    def _reset_connection(self, request: Request) -> None:
        assert self._config is not None
        client = request.client
        transport = self._config.transports.get((client.host, client.port)) if client else None
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return False
        with self._lock:
            expires = self._state.tokens.get(header[7:].strip())
        return expires is not None and expires > time.monotonic()

    def _next_fault(self, path: str, *, random_faults: bool) -> Fault | None:
        with self._lock:
            script = self._state.scripts.get(path)
            if script:
                return script.pop(0)
            plan = self._state.plan
            if not random_faults or plan is None:
                return None
            if plan.paths is not None and path not in plan.paths:
                return None
            if plan.rng.random() < plan.ratio:
                return plan.rng.choice(plan.kinds)
        return None

    def _record(
        self, request: Request, raw: bytes, body: Any, status: int | None, fault: str | None = None
    ) -> RecordedRequest:
        record = RecordedRequest(
            time=request.state.arrived,
            answered_at=time.time(),
            method=request.method,
            path=request.url.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            raw=raw,
            status=status,
            fault=fault,
        )
        with self._lock:
            self._state.records.append(record)
        return record


def _check_fault(item: Fault) -> Fault:
    if isinstance(item, int) and 100 <= item <= 599:
        return item
    if item in ("timeout", "reset"):
        return item
    if isinstance(item, str) and item.startswith("slow:"):
        _seconds(item[5:])
        return item
    raise ValueError(f"unknown fault {item!r}: a status code, 'timeout', 'reset' or 'slow:2s'")


def _seconds(text: str) -> float:
    from dovetail.config.types import parse_duration

    return parse_duration(text)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve a partner API until interrupted (SIGINT or SIGTERM); prints its URL first."""
    parser = argparse.ArgumentParser(prog="python -m dovetail.testing.partner")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--client-id")
    parser.add_argument("--client-secret")
    parser.add_argument("--token-lifetime", type=float, default=3600.0)
    parser.add_argument("--path", action="append", dest="paths", help="resource path (repeatable)")
    parser.add_argument("--conflict-on-duplicate-key")
    args = parser.parse_args(argv)
    partner = PartnerServer(
        port=args.port,
        client_id=args.client_id,
        client_secret=args.client_secret,
        paths=args.paths or ("/sales-orders",),
        token_lifetime=args.token_lifetime,
        conflict_on_duplicate_key=args.conflict_on_duplicate_key,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with partner:
        print(partner.url, flush=True)
        print(f"token endpoint: {partner.token_url}", file=sys.stderr, flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
