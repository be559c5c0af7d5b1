"""The fault-injecting partner API: recording, scripting, random faults, OAuth2 and the CLI."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from dovetail.testing.partner import PartnerServer


def test_records_requests_and_accepts_them_by_default() -> None:
    with PartnerServer() as partner:
        response = httpx.post(f"{partner.url}/sales-orders", json={"order_id": "SO-1"})
        assert response.status_code == 201
        assert (
            httpx.put(f"{partner.url}/sales-orders", json={"order_id": "SO-1"}).status_code == 200
        )
        assert httpx.delete(f"{partner.url}/sales-orders").status_code == 204
        assert httpx.post(f"{partner.url}/unknown", json={}).status_code == 404

        recorded = partner.requests("/sales-orders")
        assert [(r.method, r.status) for r in recorded] == [
            ("POST", 201),
            ("PUT", 200),
            ("DELETE", 204),
        ]
        assert recorded[0].headers["content-type"] == "application/json"
        assert recorded[0].time <= recorded[0].answered_at
        assert partner.received_bodies() == [{"order_id": "SO-1"}, {"order_id": "SO-1"}, None]
        assert partner.duplicates("order_id") == 1

        listed = httpx.get(f"{partner.url}/_partner/requests").json()
        assert [item["method"] for item in listed] == ["POST", "PUT", "DELETE"]
        assert listed[0]["body"] == {"order_id": "SO-1"}

        partner.reset()
        assert partner.requests() == []


def test_scripted_responses_come_in_order_then_success() -> None:
    with PartnerServer(retry_after=3) as partner:
        partner.script("/sales-orders", [500, 429, 202])
        responses = [httpx.post(f"{partner.url}/sales-orders", json={"n": n}) for n in range(4)]
        assert [r.status_code for r in responses] == [500, 429, 202, 201]
        assert responses[1].headers["retry-after"] == "3"
        assert "retry-after" not in responses[0].headers
        assert partner.received_bodies() == [{"n": 2}, {"n": 3}]


def test_reset_aborts_the_connection() -> None:
    with PartnerServer() as partner:
        partner.script("/sales-orders", ["reset"])
        with pytest.raises(httpx.TransportError):
            httpx.post(f"{partner.url}/sales-orders", json={})
        assert httpx.post(f"{partner.url}/sales-orders", json={}).status_code == 201
        assert [r.fault for r in partner.requests()] == ["reset", None]


def test_timeout_hangs_past_the_client_timeout_and_slow_answers_late() -> None:
    with PartnerServer(hang=2.0) as partner:
        partner.script("/sales-orders", ["timeout", "slow:300ms"])
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{partner.url}/sales-orders", json={"n": 1}, timeout=0.3)
        started = time.monotonic()
        response = httpx.post(f"{partner.url}/sales-orders", json={"n": 2}, timeout=5)
        assert response.status_code == 201
        assert time.monotonic() - started >= 0.3
        assert partner.received_bodies() == [{"n": 2}]


def test_random_faults_follow_the_ratio_and_the_seed() -> None:
    def statuses(seed: int) -> list[int]:
        with PartnerServer() as partner:
            partner.faults(ratio=0.5, kinds=[500, 503], seed=seed)
            with httpx.Client() as client:
                return [
                    client.post(f"{partner.url}/sales-orders", json={}).status_code
                    for _ in range(40)
                ]

    first, again = statuses(7), statuses(7)
    assert first == again
    assert set(first) == {201, 500, 503}
    assert 8 <= sum(1 for s in first if s != 201) <= 32

    with PartnerServer() as partner:
        partner.faults(ratio=1.0, kinds=[429])
        assert httpx.post(f"{partner.url}/sales-orders", json={}).status_code == 429
        partner.faults(ratio=0.0)
        assert httpx.post(f"{partner.url}/sales-orders", json={}).status_code == 201


def test_conflict_on_duplicate_key_answers_409() -> None:
    with PartnerServer(conflict_on_duplicate_key="order_id") as partner:
        url = f"{partner.url}/sales-orders"
        assert httpx.post(url, json={"order_id": "SO-1"}).status_code == 201
        assert httpx.post(url, json={"order_id": "SO-1"}).status_code == 409
        assert httpx.post(url, json={"order_id": "SO-2"}).status_code == 201
        assert partner.duplicates("order_id") == 0


def test_unknown_faults_are_refused() -> None:
    partner = PartnerServer()
    with pytest.raises(ValueError, match="unknown fault"):
        partner.script("/sales-orders", ["explode"])
    with pytest.raises(ValueError, match="ratio"):
        partner.faults(ratio=2)


def test_oauth_tokens_guard_the_resources() -> None:
    with PartnerServer(client_id="shop", client_secret="pw") as partner:
        url = f"{partner.url}/sales-orders"
        assert httpx.post(url, json={}).status_code == 401

        form = {"grant_type": "client_credentials", "client_id": "shop", "client_secret": "pw"}
        token = httpx.post(partner.token_url, data=form).json()
        assert token["token_type"] == "Bearer"
        assert token["expires_in"] == 3600
        basic = httpx.post(
            partner.token_url, data={"grant_type": "client_credentials"}, auth=("shop", "pw")
        )
        assert basic.status_code == 200
        assert partner.tokens_issued == 2

        wrong = httpx.post(partner.token_url, data={**form, "client_secret": "nope"})
        assert (wrong.status_code, wrong.json()) == (401, {"error": "invalid_client"})
        grant = httpx.post(partner.token_url, data={**form, "grant_type": "password"})
        assert grant.status_code == 400

        bearer = {"authorization": f"Bearer {token['access_token']}"}
        assert httpx.post(url, json={}, headers=bearer).status_code == 201
        partner.expire_tokens()
        assert httpx.post(url, json={}, headers=bearer).status_code == 401


def test_tokens_expire_after_their_lifetime() -> None:
    with PartnerServer(client_id="shop", client_secret="pw", token_lifetime=0.3) as partner:
        token = httpx.post(
            partner.token_url, data={"grant_type": "client_credentials"}, auth=("shop", "pw")
        ).json()["access_token"]
        bearer = {"authorization": f"Bearer {token}"}
        assert httpx.post(f"{partner.url}/sales-orders", headers=bearer).status_code == 201
        time.sleep(0.4)
        assert httpx.post(f"{partner.url}/sales-orders", headers=bearer).status_code == 401


def test_runs_as_a_module_and_prints_its_url() -> None:
    command = [
        sys.executable,
        "-m",
        "dovetail.testing.partner",
        "--port",
        "0",
        "--client-id",
        "shop",
        "--client-secret",
        "pw",
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:")
            answer = httpx.post(
                f"{url}/oauth/token", data={"grant_type": "client_credentials"}, auth=("shop", "pw")
            )
            assert answer.status_code == 200
        finally:
            process.terminate()
            assert process.wait(timeout=20) == 0
