"""A 401 makes the http sink read its static credential's secret again (rotation)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from dovetail.config.interpolate import Resolver
from dovetail.connectors.http.auth import StaticAuthenticator
from dovetail.connectors.http.sink import HttpSink
from dovetail.core.ack import Settlement
from dovetail.core.envelope import Envelope
from dovetail.errors import PermanentError
from dovetail.testing.components import build_component
from dovetail.testing.partner import PartnerServer


def _sink(tmp_path: Path, url: str, token: str) -> HttpSink:
    sink = build_component(
        "sink", f"http: {{url: '{url}', auth: {{bearer: {{token: {token}}}}}}}", tmp_path
    )
    assert isinstance(sink, HttpSink)
    return sink


def deliver(sink: HttpSink, batch: list[Envelope]) -> list[BaseException | None]:
    async def main() -> list[BaseException | None]:
        await sink.open()
        try:
            return await sink.write(batch)
        finally:
            await sink.close()

    return anyio.run(main)


def _order() -> Envelope:
    payload = {"order_id": "SO-1"}
    return Envelope(payload=payload, settlement=Settlement(), original=payload)


def test_a_rotated_secret_is_read_again_after_a_401(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ERP_TOKEN_ROTATION", "token-old")
    resolved, _ = Resolver().lookup("secret", "ERP_TOKEN_ROTATION")
    assert resolved == "token-old"
    with PartnerServer() as partner:
        partner.script("/sales-orders", [401])
        sink = _sink(tmp_path, f"{partner.url}/sales-orders", resolved)
        monkeypatch.setenv("ERP_TOKEN_ROTATION", "token-new")  # rotated while running
        assert deliver(sink, [_order()]) == [None]
        sent = [r.headers.get("authorization") for r in partner.requests()]
    assert sent == ["Bearer token-old", "Bearer token-new"]
    auth = sink.authenticator
    assert isinstance(auth, StaticAuthenticator)
    assert auth.refreshed == 1


def test_an_unchanged_secret_is_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ERP_TOKEN_STALE", "token-same")
    resolved, _ = Resolver().lookup("secret", "ERP_TOKEN_STALE")
    assert resolved is not None
    with PartnerServer() as partner:
        partner.script("/sales-orders", [401])
        sink = _sink(tmp_path, f"{partner.url}/sales-orders", resolved)
        (outcome,) = deliver(sink, [_order()])
        assert len(partner.requests()) == 1
    assert isinstance(outcome, PermanentError)
    assert "401" in str(outcome)
    assert "token-same" not in str(outcome)
