"""The ``api`` source runs on the shared embedded server: slow and surplus clients are cut off."""

from __future__ import annotations

from pathlib import Path

import anyio
from tests.connectors.api.test_api_source import ScriptedSink, create_flow, serving
from tests.connectors.http.test_http_server import assert_problem, read_until_closed

LIMITS = "    server: {header_timeout: 500ms, max_connections: 3}\n"
GUARDED = create_flow().replace("    timeout: 5s\n", "    timeout: 5s\n" + LIMITS)


def test_an_api_client_sending_headers_byte_by_byte_is_cut_off(project: Path) -> None:
    async def main() -> tuple[float, bytes]:
        async with serving(project, GUARDED, ScriptedSink("file")) as base:
            port = int(base.rsplit(":", 1)[1])
            stream = await anyio.connect_tcp("127.0.0.1", port)
            started = anyio.current_time()

            async def trickle() -> None:
                for byte in b"POST /v1/orders HTTP/1.1\r\nhost: x\r\nx-padding: " + b"a" * 200:
                    await stream.send(bytes([byte]))
                    await anyio.sleep(0.05)

            async with anyio.create_task_group() as group:
                group.start_soon(trickle)
                answer = await read_until_closed(stream, 5)
                group.cancel_scope.cancel()
            return anyio.current_time() - started, answer

    elapsed, answer = anyio.run(main)
    assert elapsed < 2.0
    assert_problem(answer, 408)


def test_api_connections_beyond_the_cap_get_503(project: Path) -> None:
    async def main() -> bytes:
        async with serving(project, GUARDED, ScriptedSink("file")) as base:
            port = int(base.rsplit(":", 1)[1])
            held = [await anyio.connect_tcp("127.0.0.1", port) for _ in range(3)]
            await anyio.sleep(0.1)
            extra = await anyio.connect_tcp("127.0.0.1", port)
            answer = await read_until_closed(extra, 3)
            for stream in held:
                await stream.aclose()
            return answer

    assert_problem(anyio.run(main), 503)
