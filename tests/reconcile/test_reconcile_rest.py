"""REST collections: pagination by next link and by cursor, against a real local server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dovetail.connectors.http.source import bind_listener
from dovetail.errors import PermanentError

from .support import reconcile, write_jsonl

ORDERS = [{"order_id": i, "amount": i * 10} for i in range(1, 8)]
PAGE = 3


async def by_link(request: Request) -> Response:
    page = int(request.query_params.get("page", "1"))
    if request.headers.get("authorization") != "Bearer t0ken-value":
        return JSONResponse({"error": "unauthorized"}, status_code=401)
    items = ORDERS[(page - 1) * PAGE : page * PAGE]
    more = page * PAGE < len(ORDERS)
    links = {"next": f"/orders?page={page + 1}" if more else None}
    return JSONResponse({"data": {"orders": items}, "links": links})


async def by_cursor(request: Request) -> Response:
    start = int(request.query_params.get("after", "0"))
    items = [o for o in ORDERS if o["order_id"] > start][:PAGE]
    cursor = items[-1]["order_id"] if items and items[-1] is not ORDERS[-1] else None
    return JSONResponse({"items": items, "cursor": cursor})


async def elsewhere(request: Request) -> Response:
    return JSONResponse({"items": [], "next": "http://example.invalid/steal"})


@pytest.fixture
def server() -> Iterator[str]:
    app = Starlette(
        routes=[
            Route("/orders", by_link),
            Route("/cursor", by_cursor),
            Route("/elsewhere", elsewhere),
        ]
    )
    sock = bind_listener("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False)
    instance = uvicorn.Server(config)
    thread = threading.Thread(
        target=lambda: asyncio.run(instance.serve(sockets=[sock])), daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not instance.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)


def test_rest_pages_by_next_link_with_auth(server: str, tmp_path: Path) -> None:
    source = [dict(o) for o in ORDERS if o["order_id"] != 7]
    source[0]["amount"] = 11
    write_jsonl(tmp_path / "s.jsonl", source)
    report = reconcile(
        tmp_path,
        source={"jsonl": "s.jsonl"},
        target={
            "rest": {
                "url": f"{server}/orders",
                "items": "data.orders",
                "next": "links.next",
                "auth": {"bearer": {"token": "t0ken-value"}},
            }
        },
        key="order_id",
    )
    assert report.target_records == 7  # three pages: 3 + 3 + 1
    assert [e["key"] for e in report.examples["extra"]] == ["7"]
    assert report.examples["mismatch"] == [
        {"key": "1", "field": "amount", "source": 11, "target": 10}
    ]
    assert report.equal == 5


def test_rest_pages_by_cursor_parameter(server: str, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "s.jsonl", ORDERS)
    report = reconcile(
        tmp_path,
        source={"jsonl": "s.jsonl"},
        target={
            "rest": {
                "url": f"{server}/cursor",
                "items": "items",
                "next": "cursor",
                "cursor_param": "after",
            }
        },
        key="order_id",
    )
    assert (report.target_records, report.equal, report.accuracy) == (7, 7, 100.0)


def test_next_link_to_another_host_is_refused(server: str, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "s.jsonl", ORDERS)
    with pytest.raises(PermanentError, match="next link leaves"):
        reconcile(
            tmp_path,
            source={"jsonl": "s.jsonl"},
            target={"rest": {"url": f"{server}/elsewhere", "items": "items", "next": "next"}},
            key="order_id",
        )


def test_rejected_credentials_fail_the_run(server: str, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "s.jsonl", ORDERS)
    with pytest.raises(PermanentError, match="HTTP 401 from GET /orders"):
        reconcile(
            tmp_path,
            source={"jsonl": "s.jsonl"},
            target={"rest": {"url": f"{server}/orders", "items": "data.orders"}},
            key="order_id",
        )
