"""The embedded server's guards against slow, idle and too many clients, over real sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import orjson
import pytest
from anyio.abc import SocketStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from dovetail.connectors.http.server import EmbeddedServer, ServerConfig, bind_listener

pytestmark = pytest.mark.usefixtures("http_parser")


async def echo_length(request: Request) -> JSONResponse:
    return JSONResponse({"length": len(await request.body())})


@asynccontextmanager
async def serving(**limits: float) -> AsyncIterator[tuple[EmbeddedServer, int]]:
    """A guarded server for a tiny app (answers with the body's length) on a free port."""
    sock = bind_listener("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    app = Starlette(routes=[Route("/", echo_length, methods=["POST"])])
    server = EmbeddedServer(app, sock, ServerConfig.model_validate(limits))
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve)
        yield server, port
        group.cancel_scope.cancel()


async def read_until_closed(stream: SocketStream, limit: float) -> bytes:
    """Everything the server sends until it closes the connection (fails after ``limit`` s)."""
    received = b""
    with anyio.fail_after(limit):
        while True:
            try:
                received += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return received


async def until(condition: Callable[[], bool], limit: float = 2.0) -> None:
    """Wait (at most ``limit`` seconds) until ``condition()`` holds."""
    with anyio.fail_after(limit):
        while True:
            if condition():
                return
            await anyio.sleep(0.01)


def problem_of(raw: bytes) -> tuple[int, dict[str, str], dict[str, object]]:
    """Status, headers and JSON body of one raw HTTP/1.1 answer."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines)
    return int(status_line.split()[1]), headers, orjson.loads(body)


def assert_problem(raw: bytes, status: int) -> dict[str, object]:
    code, headers, body = problem_of(raw)
    assert code == status, raw
    assert headers["content-type"] == "application/problem+json"
    assert len(headers["x-correlation-id"]) == 32
    assert body["status"] == status
    return body


def test_headers_sent_byte_by_byte_are_cut_off_at_the_header_timeout() -> None:
    async def main() -> tuple[float, bytes]:
        async with serving(header_timeout=0.5) as (_, port):
            stream = await anyio.connect_tcp("127.0.0.1", port)
            started = anyio.current_time()
            request = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nx-padding: " + b"a" * 100

            async def trickle() -> None:
                for byte in request:
                    await stream.send(bytes([byte]))
                    await anyio.sleep(0.05)

            async with anyio.create_task_group() as group:
                group.start_soon(trickle)
                answer = await read_until_closed(stream, 5)
                group.cancel_scope.cancel()
            return anyio.current_time() - started, answer

    elapsed, answer = anyio.run(main)
    assert 0.4 < elapsed < 2.0, "cut off at the deadline, however steadily bytes come in"
    assert "headers took too long" in str(assert_problem(answer, 408)["detail"])


def test_a_connection_that_sends_nothing_is_closed_at_the_header_timeout() -> None:
    async def main() -> bytes:
        async with serving(header_timeout=0.3) as (server, port):
            stream = await anyio.connect_tcp("127.0.0.1", port)
            answer = await read_until_closed(stream, 3)
            await anyio.sleep(0.05)
            assert server.open_connections == 0
            return answer

    assert_problem(anyio.run(main), 408)


def test_a_body_sent_too_slowly_is_cut_off_at_the_body_timeout() -> None:
    async def main() -> tuple[float, bytes]:
        async with serving(header_timeout=5, body_timeout=0.5) as (_, port):
            stream = await anyio.connect_tcp("127.0.0.1", port)
            await stream.send(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n")
            started = anyio.current_time()

            async def trickle() -> None:
                for _ in range(1000):
                    await stream.send(b"x")
                    await anyio.sleep(0.05)

            async with anyio.create_task_group() as group:
                group.start_soon(trickle)
                answer = await read_until_closed(stream, 5)
                group.cancel_scope.cancel()
            return anyio.current_time() - started, answer

    elapsed, answer = anyio.run(main)
    assert 0.4 < elapsed < 2.0
    assert "body took too long" in str(assert_problem(answer, 408)["detail"])


def test_an_idle_kept_alive_connection_is_closed_and_busy_ones_are_served() -> None:
    async def main() -> tuple[float, bytes]:
        async with serving(idle_timeout=1, header_timeout=5) as (_, port):
            stream = await anyio.connect_tcp("127.0.0.1", port)
            for _ in range(3):  # requests on one kept-alive connection, each well in time
                await stream.send(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc")
                with anyio.fail_after(2):
                    answer = await stream.receive()
                assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b'{"length":3}')
            started = anyio.current_time()
            rest = await read_until_closed(stream, 5)
            return anyio.current_time() - started, rest

    elapsed, rest = anyio.run(main)
    assert rest == b""
    assert 0.5 < elapsed < 2.5


def test_connections_beyond_the_cap_are_answered_503_and_never_counted() -> None:
    async def main() -> None:
        async with serving(max_connections=5, header_timeout=30) as (server, port):
            held = [await anyio.connect_tcp("127.0.0.1", port) for _ in range(5)]
            await until(lambda: server.open_connections == 5)
            for _ in range(20):
                extra = await anyio.connect_tcp("127.0.0.1", port)
                answer = await read_until_closed(extra, 2)
                _, headers, _ = problem_of(answer)
                assert headers["retry-after"] == "1"
                assert "too many connections" in str(assert_problem(answer, 503)["detail"])
                assert server.open_connections == 5
            for stream in held:
                await stream.aclose()
            await until(lambda: server.open_connections == 0)
            again = await anyio.connect_tcp("127.0.0.1", port)
            await again.send(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
            with anyio.fail_after(2):
                assert (await again.receive()).startswith(b"HTTP/1.1 200")

    anyio.run(main)


def test_a_request_the_parser_rejects_gets_a_400_problem() -> None:
    async def main() -> bytes:
        async with serving() as (_, port):
            stream = await anyio.connect_tcp("127.0.0.1", port)
            await stream.send(b"POST / HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n")
            return await read_until_closed(stream, 3)

    assert_problem(anyio.run(main), 400)


@pytest.mark.parametrize("field", ["max_connections", "header_timeout"])
def test_limits_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ServerConfig.model_validate({field: 0})


def test_what_was_built_before_serving_is_kept_out_of_full_collections_while_serving() -> None:
    """Full garbage-collector passes stop the loop for as long as they scan: objects built
    before serving are frozen while it serves (the p99 of webhook intake) and thawed after."""
    import gc

    async def main() -> int:
        async with serving() as (_, port):
            stream = await anyio.connect_tcp("127.0.0.1", port)
            await stream.send(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
            with anyio.fail_after(2):
                assert (await stream.receive()).startswith(b"HTTP/1.1 200")
            await stream.aclose()
            return gc.get_freeze_count()

    frozen = anyio.run(main)
    assert frozen > 10_000
    assert gc.get_freeze_count() == 0
