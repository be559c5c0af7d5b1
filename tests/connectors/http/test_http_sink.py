"""The http sink against a real partner API: headers, auth, classification, concurrency, URLs."""

from __future__ import annotations

import base64
import socket
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import ValidationError

from dovetail.connectors.http.sink import HttpSink
from dovetail.core.ack import Settlement
from dovetail.core.envelope import Envelope
from dovetail.core.ids import trace_id_from_traceparent
from dovetail.errors import PermanentError, RateLimitedError, TransientError
from dovetail.testing.components import build_component
from dovetail.testing.partner import PartnerServer


def message(payload: Any, **headers: str) -> Envelope:
    return Envelope(payload=payload, settlement=Settlement(), headers=dict(headers))


def make_sink(tmp_path: Path, yaml: str) -> HttpSink:
    sink = build_component("sink", yaml, tmp_path)
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


def test_posts_payload_as_json_with_trace_headers(partner: PartnerServer, tmp_path: Path) -> None:
    sink = make_sink(tmp_path, f"http: {{url: '{partner.url}/sales-orders'}}")
    order = message({"order_id": "SO-1", "total": 12.5}, **{"idempotency-key": "SO-1"})

    assert deliver(sink, [order]) == [None]

    (request,) = partner.requests("/sales-orders")
    assert request.method == "POST"
    assert request.body == {"order_id": "SO-1", "total": 12.5}
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-correlation-id"] == order.correlation_id
    assert trace_id_from_traceparent(request.headers["traceparent"]) == order.correlation_id
    assert request.headers["idempotency-key"] == "SO-1"


def test_no_idempotency_key_header_unless_the_delivery_layer_set_one(
    partner: PartnerServer, tmp_path: Path
) -> None:
    sink = make_sink(tmp_path, f"http: {{url: '{partner.url}/sales-orders'}}")
    assert deliver(sink, [message({"order_id": "SO-1"})]) == [None]
    assert "idempotency-key" not in partner.requests("/sales-orders")[0].headers


@pytest.mark.parametrize(
    ("auth", "header", "expected"),
    [
        (
            "{basic: {username: erp, password: 'pa:ss'}}",
            "authorization",
            "Basic " + base64.b64encode(b"erp:pa:ss").decode(),
        ),
        ("{bearer: {token: tok-123}}", "authorization", "Bearer tok-123"),
        ("{api_key: {value: key-9}}", "x-api-key", "key-9"),
        ("{api_key: {header: X-Partner-Key, value: key-9}}", "x-partner-key", "key-9"),
    ],
)
def test_each_auth_mode_sends_its_header(
    partner: PartnerServer, tmp_path: Path, auth: str, header: str, expected: str
) -> None:
    sink = make_sink(tmp_path, f"http: {{url: '{partner.url}/sales-orders', auth: {auth}}}")
    assert deliver(sink, [message({"order_id": "SO-1"})]) == [None]
    assert partner.requests("/sales-orders")[0].headers[header] == expected


def test_auth_needs_exactly_one_method(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="exactly one of"):
        build_component(
            "sink",
            "http: {url: 'http://erp/x', auth: {bearer: {token: a}, api_key: {value: b}}}",
            tmp_path,
        )


def test_secrets_are_not_shown_in_config_repr(tmp_path: Path) -> None:
    sink = make_sink(tmp_path, "http: {url: 'http://erp/x', auth: {bearer: {token: tok-123}}}")
    assert "tok-123" not in repr(sink.config)


def oauth_yaml(partner: PartnerServer, secret: str | None = None) -> str:
    return (
        f"http:\n  url: '{partner.url}/sales-orders'\n  auth:\n    oauth2_client_credentials:\n"
        f"      token_url: '{partner.token_url}'\n      client_id: {partner.client_id}\n"
        f"      client_secret: '{secret or partner.client_secret}'\n      audience: erp-api\n"
    )


def test_oauth2_token_is_fetched_once_and_reused(
    oauth_partner: PartnerServer, tmp_path: Path
) -> None:
    sink = make_sink(tmp_path, oauth_yaml(oauth_partner))

    async def main() -> list[list[BaseException | None]]:
        await sink.open()
        try:
            first = await sink.write([message({"order_id": f"SO-{i}"}) for i in range(5)])
            second = await sink.write([message({"order_id": f"SO-{i}"}) for i in range(5, 8)])
        finally:
            await sink.close()
        return [first, second]

    assert anyio.run(main) == [[None] * 5, [None] * 3]
    assert oauth_partner.tokens_issued == 1
    (token_request,) = oauth_partner.requests("/oauth/token")
    assert b"audience=erp-api" in token_request.raw
    statuses = [r.status for r in oauth_partner.requests("/sales-orders")]
    assert statuses == [201] * 8


def test_rejected_token_is_renewed_once_and_the_request_retried(
    oauth_partner: PartnerServer, tmp_path: Path
) -> None:
    sink = make_sink(tmp_path, oauth_yaml(oauth_partner))

    async def main() -> list[BaseException | None]:
        await sink.open()
        try:
            assert await sink.write([message({"order_id": "SO-1"})]) == [None]
            oauth_partner.expire_tokens()
            return await sink.write([message({"order_id": f"SO-{i}"}) for i in (2, 3, 4)])
        finally:
            await sink.close()

    assert anyio.run(main) == [None, None, None]
    assert oauth_partner.tokens_issued == 2
    assert sorted(r.body["order_id"] for r in oauth_partner.requests() if r.status == 201) == [
        "SO-1",
        "SO-2",
        "SO-3",
        "SO-4",
    ]


def test_token_about_to_expire_is_renewed_before_use(tmp_path: Path) -> None:
    with PartnerServer(client_id="shop", client_secret="pw", token_lifetime=1) as partner:
        sink = make_sink(tmp_path, oauth_yaml(partner))

        async def main() -> list[BaseException | None]:
            await sink.open()
            try:
                first = await sink.write([message({"order_id": "SO-1"})])
                await anyio.sleep(1.1)
                return first + await sink.write([message({"order_id": "SO-2"})])
            finally:
                await sink.close()

        assert anyio.run(main) == [None, None]
        assert partner.tokens_issued == 2
        assert [r.status for r in partner.requests("/sales-orders")] == [201, 201]


def test_wrong_client_secret_is_permanent_and_never_shown(
    oauth_partner: PartnerServer, tmp_path: Path
) -> None:
    sink = make_sink(tmp_path, oauth_yaml(oauth_partner, secret="wrong-Secret-77"))
    (result,) = deliver(sink, [message({"order_id": "SO-1"})])
    assert isinstance(result, PermanentError)
    assert "invalid_client" in result.reason
    for text in (result.reason, str(result), repr(result), str(result.detail)):
        assert "wrong-Secret-77" not in text
    assert result.__cause__ is None
    assert oauth_partner.requests("/sales-orders") == []


def test_token_endpoint_outage_is_transient(oauth_partner: PartnerServer, tmp_path: Path) -> None:
    oauth_partner.script("/oauth/token", [503])
    sink = make_sink(tmp_path, oauth_yaml(oauth_partner))
    (result,) = deliver(sink, [message({"order_id": "SO-1"})])
    assert isinstance(result, TransientError)
    assert result.reason == "token request to /oauth/token failed: HTTP 503"


def test_missing_token_answers_401_without_auth(
    oauth_partner: PartnerServer, tmp_path: Path
) -> None:
    sink = make_sink(tmp_path, f"http: {{url: '{oauth_partner.url}/sales-orders'}}")
    (result,) = deliver(sink, [message({"order_id": "SO-1"})])
    assert isinstance(result, PermanentError)
    assert result.reason.startswith("HTTP 401 from POST /sales-orders")


@pytest.mark.parametrize(
    ("scripted", "options", "expected", "retry_after"),
    [
        (201, "", None, None),
        (200, "", None, None),
        (204, "", None, None),
        (202, "success: [201]", PermanentError, None),
        (409, "already_delivered: [409]", None, None),
        (409, "", PermanentError, None),
        (400, "", PermanentError, None),
        (404, "", PermanentError, None),
        (422, "", PermanentError, None),
        (408, "", TransientError, None),
        (425, "", TransientError, None),
        (429, "", RateLimitedError, 1.0),
        (500, "", TransientError, None),
        (502, "", TransientError, None),
        (503, "", TransientError, None),
        (504, "", TransientError, None),
        (507, "", TransientError, None),
        (501, "", PermanentError, None),
        (505, "", PermanentError, None),
        (422, "transient: [422]", TransientError, None),
        (503, "permanent: [503]", PermanentError, None),
        ("reset", "", TransientError, None),
        ("timeout", "timeout: 300ms", TransientError, None),
    ],
)
def test_status_classification(
    partner: PartnerServer,
    tmp_path: Path,
    scripted: int | str,
    options: str,
    expected: type[Exception] | None,
    retry_after: float | None,
) -> None:
    partner.script("/sales-orders", [scripted])
    extra = f", {options}" if options else ""
    sink = make_sink(tmp_path, f"http: {{url: '{partner.url}/sales-orders'{extra}}}")
    (result,) = deliver(sink, [message({"order_id": "SO-1"})])
    if expected is None:
        assert result is None
        return
    assert type(result) is expected
    assert isinstance(result, TransientError | PermanentError)
    if isinstance(scripted, int):
        assert result.reason.startswith(f"HTTP {scripted} from POST /sales-orders")
    if isinstance(result, TransientError):
        assert result.retry_after == retry_after


def test_permanent_reason_quotes_the_start_of_the_response_body(
    partner: PartnerServer, tmp_path: Path
) -> None:
    partner.script("/sales-orders", [422])
    sink = make_sink(tmp_path, f"http: {{url: '{partner.url}/sales-orders'}}")
    (result,) = deliver(sink, [message({"order_id": "SO-1"})])
    assert isinstance(result, PermanentError)
    assert result.reason == 'HTTP 422 from POST /sales-orders: {"error":"scripted 422"}'


def test_connection_refused_is_transient(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = make_sink(tmp_path, f"http: {{url: 'http://127.0.0.1:{port}/x', timeout: 2s}}")
    (result,) = deliver(sink, [message({"order_id": "SO-1"})])
    assert isinstance(result, TransientError)
    assert "POST /x" in result.reason


def test_payload_json_cannot_represent_is_permanent(partner: PartnerServer, tmp_path: Path) -> None:
    sink = make_sink(tmp_path, f"http: {{url: '{partner.url}/sales-orders'}}")
    (result,) = deliver(sink, [message({"tags": {1, 2}})])
    assert isinstance(result, PermanentError)
    assert partner.requests() == []


def test_results_follow_batch_order_when_some_fail(partner: PartnerServer, tmp_path: Path) -> None:
    sink = make_sink(tmp_path, f"http: {{url: '{partner.url}/orders/{{order_id}}', method: PUT}}")
    batch = [message({"order_id": "A"}), message({"no_id": True}), message({"order_id": "C"})]
    results = deliver(sink, batch)
    assert results[0] is None
    assert isinstance(results[1], PermanentError)
    assert results[2] is None


def test_requests_in_flight_are_bounded_by_concurrency(
    partner: PartnerServer, tmp_path: Path
) -> None:
    partner.script("/sales-orders", ["slow:300ms"] * 9)
    sink = make_sink(tmp_path, f"http: {{url: '{partner.url}/sales-orders', concurrency: 3}}")
    started = time.monotonic()
    results = deliver(sink, [message({"order_id": f"SO-{i}"}) for i in range(9)])
    elapsed = time.monotonic() - started

    assert results == [None] * 9
    intervals = [(r.time, r.answered_at) for r in partner.requests("/sales-orders")]
    peak = max(sum(1 for s, e in intervals if s <= start < e) for start, _ in intervals)
    assert peak == 3
    assert elapsed >= 0.9


def test_url_placeholders_are_filled_and_encoded(partner: PartnerServer, tmp_path: Path) -> None:
    sink = make_sink(tmp_path, f"http: {{url: '{partner.url}/orders/{{order_id}}', method: PUT}}")
    assert deliver(sink, [message({"order_id": "SO 7", "total": 3})]) == [None]
    (request,) = partner.requests()
    assert (request.method, request.path, request.body) == (
        "PUT",
        "/orders/SO 7",
        {
            "order_id": "SO 7",
            "total": 3,
        },
    )


def test_payload_cannot_move_the_request_to_another_host(tmp_path: Path) -> None:
    sink = make_sink(tmp_path, "http: {url: 'https://erp.example.com/orders/{id}?v={v}'}")
    url = sink.target_url({"id": "x@evil.com/a", "v": "1&admin=true#frag/../.."})
    assert url == (
        "https://erp.example.com/orders/x%40evil.com%2Fa?v=1%26admin%3Dtrue%23frag%2F..%2F.."
    )
    with pytest.raises(PermanentError, match="no value"):
        sink.target_url({"v": 1})
    with pytest.raises(PermanentError, match="not a scalar"):
        sink.target_url({"id": {"a": 1}, "v": 1})


CLIMBING_IDS = [".", "..", "%2e%2e", "%2E.", ".%2e", "%252e%252e", "../admin", "x/../..", "..\\"]


def test_a_path_segment_from_the_payload_cannot_climb(tmp_path: Path) -> None:
    """``/api/v1/orders/{id}`` with ``id = ".."`` would be sent as ``POST /api/v1``: every
    dot segment, however encoded, and an empty segment are dead-lettered instead, and the
    server only ever sees requests under ``/api/v1/orders/``."""
    with PartnerServer(paths=("/{anything:path}",)) as server:
        sink = make_sink(tmp_path, f"http: {{url: '{server.url}/api/v1/orders/{{id}}'}}")
        ids = [*CLIMBING_IDS, "", "SO-1", "a/b", "v1.2", "..."]
        results = deliver(sink, [message({"id": value}) for value in ids])
        paths = sorted(request.path for request in server.requests())
    refused = results[: len(CLIMBING_IDS) + 1]
    assert all(isinstance(result, PermanentError) for result in refused), refused
    assert all("URL path segment {id}" in str(result) for result in refused)
    assert "dot segment" in str(results[1]) and "empty" in str(results[len(CLIMBING_IDS)])
    assert results[len(CLIMBING_IDS) + 1 :] == [None] * 4
    assert paths == sorted(
        ["/api/v1/orders/SO-1", "/api/v1/orders/a/b", "/api/v1/orders/v1.2", "/api/v1/orders/..."]
    )


def test_placeholders_in_the_host_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="only allowed in the URL's path and query"):
        build_component("sink", "http: {url: 'https://{tenant}.example.com/orders'}", tmp_path)


@pytest.mark.parametrize(
    ("options", "message_text"),
    [
        ("url: 'ftp://erp/x'", "http:// or https://"),
        ("url: 'http://erp/x', permanent: [503], transient: [503]", "both permanent and transient"),
        ("url: 'http://erp/x', success: [700]", "not an HTTP status code"),
        ("url: 'http://erp/x', timeout: soon", "expected a duration"),
        ("url: 'http://erp/x', concurrency: 0", "greater than or equal to 1"),
        ("url: 'http://erp/x', retries: 3", "Extra inputs are not permitted"),
    ],
)
def test_invalid_config_is_rejected(tmp_path: Path, options: str, message_text: str) -> None:
    with pytest.raises(ValidationError, match=message_text):
        build_component("sink", f"http: {{{options}}}", tmp_path)


ERP_SPEC = """\
openapi: 3.0.3
info: {title: ERP, version: 1.0.0}
paths:
  /x:
    post:
      operationId: createSalesOrder
      requestBody:
        content:
          application/json:
            schema: {type: object}
      responses: {"201": {description: created}}
"""


def test_rate_limit_and_contract_are_declared(tmp_path: Path) -> None:
    (tmp_path / "erp.yaml").write_text(ERP_SPEC, encoding="utf-8")
    sink = make_sink(
        tmp_path,
        "http: {url: 'http://erp/x', rate_limit: 20/s, contract: 'erp.yaml#createSalesOrder'}",
    )
    assert sink.config.rate_limit == 20.0
    contract = sink.config.contract
    assert contract is not None
    assert (contract.openapi, contract.operation) == ("erp.yaml", "createSalesOrder")


def test_non_ascii_correlation_ids_and_keys_are_sent_percent_encoded(
    partner: PartnerServer, tmp_path: Path
) -> None:
    sink = make_sink(tmp_path, f"http: {{url: '{partner.url}/sales-orders'}}")
    order = message({"order_id": "Ü-1"}, **{"idempotency-key": "Müller\n1"})
    order.correlation_id = "bestellung-ä"
    assert deliver(sink, [order]) == [None]
    headers = partner.requests()[0].headers
    assert headers["idempotency-key"] == "M%C3%BCller%0A1"
    assert headers["x-correlation-id"] == "bestellung-%C3%A4"
    assert "traceparent" not in headers
