"""HTTP: webhook signatures (wrong secret, stale timestamp, replay) and outbound URLs built
from message content that can never reach another host."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from pydantic import ValidationError

from dovetail.connectors.http import sink as http_sink
from dovetail.connectors.http.signature import sign
from dovetail.connectors.http.sink import HttpSink
from dovetail.connectors.http.source import WebhookSource
from dovetail.core.ack import Settlement
from dovetail.core.envelope import Envelope
from dovetail.errors import PermanentError
from dovetail.store.sqlite import SqliteStore
from dovetail.testing.components import build_component

SECRET = "whsec-right"
BODY = b'{"order_id": "SO-1"}'


def headers(secret: str = SECRET, age: int = 0, body: bytes = BODY) -> dict[str, str]:
    stamp = str(int(time.time()) - age)
    return {"x-timestamp": stamp, "x-signature": sign(secret.encode(), stamp, body)}


async def post_all(
    tmp_path: Path, requests: list[dict[str, str]], *, options: str = "", verify: bool = True
) -> tuple[list[int], int]:
    """POST ``BODY`` with each header set to the webhook app; the statuses and rows stored."""
    store = SqliteStore(tmp_path / "state.db")
    await store.open()
    try:
        snippet = f"http: {{signature: {{secret: {SECRET}{options}}}}}"
        source = build_component("source", snippet, tmp_path, store=store, flow="f", once=False)
        assert isinstance(source, WebhookSource)
        if not verify:
            source._verifier = None  # the guard switched off
        transport = httpx.ASGITransport(app=source.app())
        statuses = []
        async with httpx.AsyncClient(transport=transport, base_url="http://hook") as client:
            for request_headers in requests:
                response = await client.post("/", content=BODY, headers=request_headers)
                statuses.append(response.status_code)
        stored = len(await store.inbox_pending("f", 100))
    finally:
        await store.close()
    return statuses, stored


def test_a_request_signed_with_another_secret_is_401_and_not_stored(tmp_path: Path) -> None:
    assert anyio.run(post_all, tmp_path, [headers(secret="whsec-wrong")]) == ([401], 0)


def test_a_stale_timestamp_is_401_and_not_stored(tmp_path: Path) -> None:
    assert anyio.run(post_all, tmp_path, [headers(age=600)]) == ([401], 0)


def test_a_replayed_signature_is_409_and_stored_once(tmp_path: Path) -> None:
    same = headers()
    assert anyio.run(post_all, tmp_path, [same, same]) == ([202, 409], 1)


def test_a_wider_tolerance_is_a_setting(tmp_path: Path) -> None:
    result = anyio.run(lambda: post_all(tmp_path, [headers(age=600)], options=", tolerance: 1h"))
    assert result == ([202], 1)


def test_without_verification_all_three_attacks_would_be_stored(tmp_path: Path) -> None:
    same = headers()
    attacks = [headers(secret="whsec-wrong"), headers(age=600), same, same]
    statuses, stored = anyio.run(lambda: post_all(tmp_path, attacks, verify=False))
    assert statuses == [202, 202, 202, 202]
    assert stored == 4


# --- outbound URLs ---------------------------------------------------------------------------

TEMPLATE = "https://erp.example.com/orders/{order_id}?customer={customer}"

HOSTILE = [
    "evil.example",
    "@evil.example",
    "//evil.example/x",
    "https://evil.example/",
    "../../admin",
    "x/../../admin",
    "1?customer=other#",
    "%2e%2e/admin",
    "x\r\nHost: evil.example",
]


def make_sink(tmp_path: Path, url: str = TEMPLATE) -> HttpSink:
    sink = build_component("sink", f"http: {{url: '{url}'}}", tmp_path)
    assert isinstance(sink, HttpSink)
    return sink


@pytest.mark.parametrize("value", HOSTILE)
def test_payload_values_never_change_the_host_or_escape_their_path_segment(
    tmp_path: Path, value: str
) -> None:
    url = httpx.URL(make_sink(tmp_path).target_url({"order_id": value, "customer": value}))
    assert url.host == "erp.example.com"
    assert url.scheme == "https"
    assert url.path.startswith("/orders/")
    assert "/" not in url.raw_path.decode()[len("/orders/") :].split("?")[0]
    assert list(url.params.keys()) == ["customer"]


@pytest.mark.parametrize(
    "url",
    [
        "https://{host}/orders",
        "https://erp.example.com{path}",
        "https://{user}@erp.example.com/x",
        "https://erp.example.com:{port}/x",
    ],
)
def test_placeholders_in_the_host_part_are_config_errors(tmp_path: Path, url: str) -> None:
    with pytest.raises(ValidationError, match="placeholders are only allowed"):
        make_sink(tmp_path, url)


def test_requests_really_go_to_the_configured_host(tmp_path: Path) -> None:
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(201)

    sink = make_sink(tmp_path)

    async def main() -> list[BaseException | None]:
        await sink.open()
        assert sink._client is not None
        sink._client._transport = httpx.MockTransport(handler)
        try:
            batch = [
                Envelope(payload={"order_id": v, "customer": "c"}, settlement=Settlement())
                for v in HOSTILE
            ]
            return await sink.write(batch)
        finally:
            await sink.close()

    assert anyio.run(main) == [None] * len(HOSTILE)
    assert {url.host for url in seen} == {"erp.example.com"}


def test_without_encoding_a_payload_would_walk_the_path_of_the_partner_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_sink, "quote", lambda text, safe="": text)
    sink = make_sink(tmp_path, "https://erp.example.com/orders/{order_id}")
    walked = httpx.URL(sink.target_url({"order_id": "../../admin"}))
    assert walked.path == "/admin"


def test_the_host_check_refuses_a_filled_url_on_another_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(tmp_path, "https://erp.example.com/orders/{order_id}")
    # a filled template that somehow ends up elsewhere (defence in depth behind the encoding)
    monkeypatch.setattr(sink, "config", sink.config.model_copy(update={"url": "https://{x}/"}))
    with pytest.raises(PermanentError, match="leaves the configured host"):
        sink.target_url({"x": "evil.example"})


def test_redirects_are_not_followed(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "erp.example.com":
            return httpx.Response(307, headers={"location": "https://evil.example/steal"})
        raise AssertionError("the redirect was followed")

    sink = make_sink(tmp_path, "https://erp.example.com/orders")

    async def main() -> Any:
        await sink.open()
        assert sink._client is not None
        sink._client._transport = httpx.MockTransport(handler)
        try:
            return await sink.write([Envelope(payload={"order_id": 1}, settlement=Settlement())])
        finally:
            await sink.close()

    (result,) = anyio.run(main)
    assert result is not None
