"""The webhook source against hostile requests, over real sockets: what is refused before the
body is read, malformed headers, DOCTYPEs, and slow clients. Every refusal is a 4xx
problem+json with an ``x-correlation-id``, and nothing refused is stored."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import httpx
import pytest
from tests.connectors.http.test_http_server import assert_problem, read_until_closed
from tests.connectors.http.test_webhook_source import SIGNED, receiving, signed_headers

pytestmark = pytest.mark.usefixtures("http_parser")

BODY = b'{"order_id": "SO-1"}'


def head(port: int, content_length: int, extra: str = "") -> bytes:
    return (
        f"POST /hooks/orders HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        f"content-type: application/json\r\ncontent-length: {content_length}\r\n{extra}\r\n"
    ).encode("latin-1")


def test_200_unsigned_requests_are_refused_before_their_bodies_are_sent(tmp_path: Path) -> None:
    """200 connections each announcing a 1 MiB body, none sending it: each gets 401 at once
    and is closed, so the process never holds their bodies."""

    async def main() -> list[bytes]:
        async with receiving(tmp_path) as receiver:
            port = receiver.source.port
            assert port is not None
            streams = [await anyio.connect_tcp("127.0.0.1", port) for _ in range(200)]
            answers: list[bytes] = []
            for stream in streams:
                await stream.send(head(port, 1_048_576))
            for stream in streams:
                answers.append(await read_until_closed(stream, 5))
            assert await receiver.pending() == []
            return answers

    for answer in anyio.run(main):
        assert assert_problem(answer, 401)["detail"] == "missing signature"


def test_a_huge_declared_body_is_413_before_it_is_read(tmp_path: Path) -> None:
    async def main() -> bytes:
        async with receiving(tmp_path) as receiver:
            port = receiver.source.port
            assert port is not None
            stream = await anyio.connect_tcp("127.0.0.1", port)
            stamp = str(int(time.time()))
            await stream.send(head(port, 10 * 2**30, f"x-timestamp: {stamp}\r\nx-signature: a\r\n"))
            return await read_until_closed(stream, 5)

    assert "larger than 1048576" in str(assert_problem(anyio.run(main), 413)["detail"])


def test_a_signed_looking_request_with_a_stale_timestamp_is_401_before_its_body(
    tmp_path: Path,
) -> None:
    async def main() -> bytes:
        async with receiving(tmp_path) as receiver:
            port = receiver.source.port
            assert port is not None
            stream = await anyio.connect_tcp("127.0.0.1", port)
            await stream.send(head(port, 1000, "x-timestamp: 1000\r\nx-signature: sha256=00\r\n"))
            return await read_until_closed(stream, 5)

    assert assert_problem(anyio.run(main), 401)["detail"] == "stale timestamp"


@pytest.mark.parametrize(
    "timestamp",
    [b"\xb2", "1700000000\xb2".encode("latin-1"), b"\xc2\xb2", b"17e8", b"-1", b"0x10", b"1 2"],
)
def test_a_timestamp_that_is_not_ascii_digits_is_401_not_500(
    tmp_path: Path, timestamp: bytes
) -> None:
    """``"²".isdigit()`` is true; such a header used to reach ``int()`` and answer 500."""

    async def main() -> httpx.Response:
        async with receiving(tmp_path) as receiver:
            headers = {**signed_headers(BODY), "x-timestamp": timestamp}
            async with httpx.AsyncClient() as client:
                response = await client.post(receiver.url, content=BODY, headers=headers)
            assert await receiver.pending() == []
            return response

    response = anyio.run(main)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-correlation-id"]
    assert response.json()["detail"].startswith("invalid timestamp")


@pytest.mark.parametrize("length", ["abc", "²", "-5", "1" * 30])
def test_a_malformed_content_length_is_a_400_problem(tmp_path: Path, length: str) -> None:
    """Checked by the app itself (here called in-process: a real HTTP parser refuses some of
    these before the app, with its own 400)."""

    async def main() -> httpx.Response:
        async with receiving(tmp_path, "http: {path: /hooks/orders}") as receiver:
            transport = httpx.ASGITransport(app=receiver.source.app())
            async with httpx.AsyncClient(transport=transport, base_url="http://hook") as client:
                request = client.build_request("POST", "/hooks/orders", content=BODY)
                request.headers["content-length"] = length
                return await client.send(request)

    response = anyio.run(main)
    assert response.status_code == 400
    assert response.json()["detail"] == "invalid Content-Length header"
    assert response.headers["x-correlation-id"]


def test_every_refusal_carries_the_callers_correlation_id(tmp_path: Path) -> None:
    async def main() -> list[httpx.Response]:
        async with receiving(tmp_path) as receiver, httpx.AsyncClient() as client:
            ids = {"x-correlation-id": "order-batch-7"}
            return [
                await client.post(receiver.url, content=BODY, headers=ids),
                await client.post(receiver.url, content=b"{", headers=ids),
                await client.post(
                    receiver.url, content=b"{", headers={**ids, **signed_headers(b"{")}
                ),
            ]

    responses = anyio.run(main)
    assert [r.status_code for r in responses] == [401, 401, 400]
    assert {r.headers["x-correlation-id"] for r in responses} == {"order-batch-7"}


def test_an_accepted_request_answers_its_ids_in_headers_too(tmp_path: Path) -> None:
    async def main() -> httpx.Response:
        async with receiving(tmp_path) as receiver:
            return await receiver.post(BODY, signed_headers(BODY))

    response = anyio.run(main)
    assert response.status_code == 202
    assert response.headers["x-correlation-id"] == response.json()["correlation_id"]
    assert response.headers["x-request-id"] == response.json()["request_id"]


@pytest.mark.parametrize(
    "body",
    [
        b'<!DOCTYPE order [<!ENTITY i "INTERNAL">]><order>&i;</order>',
        b'<!DOCTYPE order SYSTEM "http://127.0.0.1:1/order.dtd"><order>1</order>',
        b"<?xml version='1.0'?>\n<!DOCTYPE order><order>1</order>",
    ],
)
def test_an_xml_body_with_a_doctype_is_400_and_not_stored(tmp_path: Path, body: bytes) -> None:
    async def main() -> httpx.Response:
        async with receiving(tmp_path, "http: {path: /hooks/orders, format: xml}") as receiver:
            response = await receiver.post(body)
            assert await receiver.pending() == []
            return response

    response = anyio.run(main)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert "DOCTYPE" in response.json()["detail"]


def test_headers_sent_byte_by_byte_to_the_webhook_are_cut_off(tmp_path: Path) -> None:
    snippet = SIGNED.replace("}}", "}, server: {header_timeout: 500ms}}")

    async def main() -> bytes:
        async with receiving(tmp_path, snippet) as receiver:
            port = receiver.source.port
            assert port is not None
            stream = await anyio.connect_tcp("127.0.0.1", port)

            async def trickle() -> None:
                for byte in head(port, 2):
                    await stream.send(bytes([byte]))
                    await anyio.sleep(0.05)

            async with anyio.create_task_group() as group:
                group.start_soon(trickle)
                answer = await read_until_closed(stream, 5)
                group.cancel_scope.cancel()
            return answer

    assert_problem(anyio.run(main), 408)
