"""Property tests: no header value, however malformed, makes the webhook source fail with
anything but a 4xx problem+json that carries an ``x-correlation-id``."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dovetail.connectors.http.body import declared_length
from dovetail.connectors.http.signature import (
    SignatureRejected,
    SignatureVerifier,
    parse_timestamp,
    sign,
)
from dovetail.connectors.http.source import WebhookSource
from dovetail.errors import PayloadRejected
from dovetail.store.sqlite import SqliteStore
from dovetail.testing.components import build_component

SECRET = b"whsec-prop"
NOW = 1_700_000_000
ASCII_DIGITS = re.compile(r"[0-9]+")

header_text = st.text(st.characters(max_codepoint=0xFF), max_size=40)
"""Header values as a server hands them over: bytes decoded as latin-1."""
digits_like = st.one_of(
    header_text,
    st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=14),
    st.integers(min_value=-(10**14), max_value=10**14).map(str),
    st.from_regex(r"[ \t]*[0-9]{1,14}[ \t]*", fullmatch=True),
)


@given(digits_like)
@example("²")
@example("1700000000²")
@example("٣")
def test_a_timestamp_is_ascii_digits_or_a_401(value: str) -> None:
    stamp = value.strip(" \t")
    if ASCII_DIGITS.fullmatch(stamp) and len(stamp) <= 12:
        assert parse_timestamp(value) == int(stamp)
        return
    with pytest.raises(SignatureRejected) as raised:
        parse_timestamp(value)
    assert raised.value.status == 401


@given(digits_like)
@example("²")
def test_a_content_length_is_ascii_digits_or_refused(value: str) -> None:
    stamp = value.strip(" \t")
    if ASCII_DIGITS.fullmatch(stamp) and len(stamp) <= 19:
        assert declared_length(value) == int(stamp)
        return
    with pytest.raises(PayloadRejected, match=r"^invalid Content-Length header$"):
        declared_length(value)


@given(signature=st.one_of(st.none(), header_text), timestamp=st.one_of(st.none(), digits_like))
@example(signature="sha256=00", timestamp="²")
def test_verifying_any_headers_raises_only_a_rejection(
    signature: str | None, timestamp: str | None
) -> None:
    verifier = SignatureVerifier(SECRET, clock=lambda: NOW)
    with pytest.raises(SignatureRejected) as raised:
        verifier.verify(signature, timestamp, b"{}")
    assert raised.value.status == 401


@given(st.from_regex(r"0{0,2}", fullmatch=True))
def test_a_genuine_signature_with_leading_zeros_in_its_timestamp_is_accepted(zeros: str) -> None:
    stamp = zeros + str(NOW)
    verifier = SignatureVerifier(SECRET, clock=lambda: NOW)
    assert verifier.verify(sign(SECRET, stamp, b"{}"), stamp, b"{}")


latin1_header = st.binary(max_size=40).map(lambda raw: raw.replace(b"\r", b"").replace(b"\n", b""))
"""Raw header bytes as an ASGI server may pass them (line breaks are the parser's business)."""


async def call_app(app: Any, headers: list[tuple[bytes, bytes]], body: bytes) -> dict[str, Any]:
    """One request straight into the ASGI app: status, headers and body of its answer."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }
    sent = False
    answer: dict[str, Any] = {"body": b""}

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
            answer["headers"] = {
                k.decode("latin-1"): v.decode("latin-1") for k, v in message["headers"]
            }
        else:
            answer["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return answer


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    timestamp=st.one_of(latin1_header, digits_like.map(lambda v: v.encode("utf-8"))),
    signature=latin1_header,
    length=st.one_of(st.none(), latin1_header),
    correlation=st.one_of(st.none(), latin1_header),
    traceparent=st.one_of(st.none(), latin1_header),
)
@example(timestamp=b"\xb2", signature=b"sha256=00", length=None, correlation=None, traceparent=None)
def test_any_header_values_get_a_4xx_problem_with_a_correlation_id(
    tmp_path: Path,
    timestamp: bytes,
    signature: bytes,
    length: bytes | None,
    correlation: bytes | None,
    traceparent: bytes | None,
) -> None:
    headers = [(b"x-timestamp", timestamp), (b"x-signature", signature)]
    for name, value in [
        (b"content-length", length),
        (b"x-correlation-id", correlation),
        (b"traceparent", traceparent),
    ]:
        if value is not None:
            headers.append((name, value))

    async def main() -> dict[str, Any]:
        store = SqliteStore(tmp_path / "state.db")
        await store.open()
        try:
            snippet = "http: {signature: {secret: whsec-prop}}"
            source = build_component("source", snippet, tmp_path, store=store, once=False)
            assert isinstance(source, WebhookSource)
            answer = await call_app(source.app(), headers, b'{"a": 1}')
            assert await store.inbox_pending("flow", 10) == []
            return answer
        finally:
            await store.close()

    answer = anyio.run(main)
    assert answer["status"] in {400, 401, 413}
    assert answer["headers"]["content-type"] == "application/problem+json"
    assert answer["headers"]["x-correlation-id"]
    problem = orjson.loads(answer["body"])
    assert problem["status"] == answer["status"] and problem["detail"]


def test_a_fresh_well_formed_request_is_judged_by_its_signature(
    tmp_path: Path,
) -> None:
    """A sanity check of the harness: a well-formed fresh request with a wrong signature is
    refused for its signature, a genuine one is accepted."""
    stamp = str(int(time.time())).encode()

    async def main() -> list[int]:
        store = SqliteStore(tmp_path / "state.db")
        await store.open()
        try:
            snippet = "http: {signature: {secret: whsec-prop}}"
            source = build_component("source", snippet, tmp_path, store=store, once=False)
            good = sign(SECRET, stamp.decode(), b"{}").encode()
            statuses = []
            for signature in (b"sha256=00", good):
                headers = [(b"x-timestamp", stamp), (b"x-signature", signature)]
                statuses.append((await call_app(source.app(), headers, b"{}"))["status"])
            return statuses
        finally:
            await store.close()

    assert anyio.run(main) == [401, 202]
