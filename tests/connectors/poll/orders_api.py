"""A real REST API on 127.0.0.1 that lists orders with every pagination style the poller reads.

``/cursor/orders``, ``/offset/orders``, ``/page/orders`` and ``/link/orders`` list the same
orders (``updated_after`` filters them, exclusively) three per page. Scripted answers
(status, headers) come first, in order; with OAuth2 on, every list request needs a token
from ``/oauth/token``.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dovetail.connectors.http.source import bind_listener

PAGE_SIZE = 3
CLIENT_ID = "poller"
CLIENT_SECRET = "poll-Secret-7"


@dataclass
class Seen:
    """One request the API received."""

    path: str
    params: dict[str, str]
    authorization: str | None
    status: int


@dataclass
class OrdersApi:
    """The orders API, its data and what it saw."""

    orders: list[dict[str, Any]] = field(default_factory=list)
    oauth: bool = False
    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    tokens_issued: int = 0
    link_host: str | None = None
    """Serve next links on this host instead (to test that they are refused)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, count: int) -> None:
        """Append ``count`` orders, each updated one second after the previous one."""
        start = len(self.orders)
        for n in range(start, start + count):
            stamp = f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}Z"
            self.orders.append({"id": n + 1, "updated_at": stamp})

    def list_requests(self) -> list[Seen]:
        return [s for s in self.seen if s.path != "/oauth/token"]

    def app(self) -> Starlette:
        routes = [Route("/oauth/token", self._token, methods=["POST"])]
        routes += [
            Route(f"/{style}/orders", self._list, methods=["GET"])
            for style in ("cursor", "offset", "page", "link", "plain")
        ]
        return Starlette(routes=routes)

    async def _token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        pair = (form.get("client_id"), form.get("client_secret"))
        basic = request.headers.get("authorization", "")
        if basic.startswith("Basic "):
            user, _, password = base64.b64decode(basic[6:]).decode().partition(":")
            pair = (unquote_plus(user), unquote_plus(password))
        ok = pair == (CLIENT_ID, CLIENT_SECRET)
        self.seen.append(Seen("/oauth/token", {}, None, 200 if ok else 401))
        if not ok:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        token = secrets.token_urlsafe(16)
        self.tokens.add(token)
        self.tokens_issued += 1
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    async def _list(self, request: Request) -> Response:
        params = dict(request.query_params)
        auth = request.headers.get("authorization")
        path = request.url.path

        def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
            self.seen.append(Seen(path, params, auth, status))
            return JSONResponse(body, status_code=status, headers=headers)

        if self.oauth and (auth is None or auth.removeprefix("Bearer ") not in self.tokens):
            return answer(401, {"error": "invalid_token"})
        if self.script:
            status, headers = self.script.pop(0)
            return answer(status, {"error": f"scripted {status}"}, headers)
        after = params.get("updated_after")
        rows = [o for o in self.orders if after is None or o["updated_at"] > after]
        style = path.split("/")[1]
        if style == "plain":
            return answer(200, rows)
        if style == "cursor":
            start = int(params.get("cursor", "c0")[1:])
            chunk = rows[start : start + PAGE_SIZE]
            more = start + PAGE_SIZE < len(rows)
            cursor = f"c{start + PAGE_SIZE}" if more else None
            return answer(200, {"data": chunk, "meta": {"next_cursor": cursor}})
        if style == "offset":
            start, limit = int(params["offset"]), int(params["limit"])
            return answer(200, {"data": rows[start : start + limit]})
        number = int(params.get("page", "1"))
        size = int(params.get("per_page", str(PAGE_SIZE)))
        chunk = rows[(number - 1) * size : number * size]
        if style == "page":
            return answer(200, {"data": chunk})
        headers = {}
        if number * size < len(rows):
            query = f"page={number + 1}&per_page={size}" + (
                f"&updated_after={after}" if after else ""
            )
            host = self.link_host or ""
            first = f'<{host}/link/orders?page=1>; rel="first"'
            headers["link"] = f'{first}, <{host}/link/orders?{query}>; rel="next"'
        return answer(200, {"data": chunk}, headers)


class Serving:
    def __init__(self, api: OrdersApi) -> None:
        sock = bind_listener("127.0.0.1", 0)
        api.port = int(sock.getsockname()[1])
        config = uvicorn.Config(api.app(), lifespan="off", log_config=None, access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[sock])), daemon=True
        )

    def __enter__(self) -> Serving:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the orders API did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
