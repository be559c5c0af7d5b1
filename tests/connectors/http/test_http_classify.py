"""Status and exception classification rules, and Retry-After parsing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest

from dovetail.connectors.http.classify import (
    StatusPolicy,
    classify_exception,
    classify_response,
    parse_retry_after,
)
from dovetail.errors import PermanentError, RateLimitedError, TransientError
from dovetail.observability.redaction import register_secret

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def response(status: int, body: str = "", retry_after: str | None = None) -> httpx.Response:
    request = httpx.Request("POST", "https://erp.example.com/sales-orders?token=abc")
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(status, text=body, headers=headers, request=request)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Sat, 01 Mar 2025 12:00:30 GMT", 30.0),
        ("Sat, 01 Mar 2025 11:00:00 GMT", 0.0),
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_http_date(
    value: str | None, seconds: float | None
) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


def test_rate_limited_carries_retry_after_from_an_http_date() -> None:
    failure = classify_response(
        response(429, retry_after="Sat, 01 Mar 2025 12:01:00 GMT"), StatusPolicy(), now=NOW
    )
    assert isinstance(failure, RateLimitedError)
    assert failure.retry_after == 60.0


def test_service_unavailable_carries_retry_after() -> None:
    failure = classify_response(response(503, retry_after="7"), StatusPolicy())
    assert type(failure) is TransientError
    assert failure.retry_after == 7.0


def test_reason_names_method_and_path_only_and_trims_the_body() -> None:
    body = "line one\n\n   line two " + "x" * 500
    failure = classify_response(response(400, body), StatusPolicy())
    assert isinstance(failure, PermanentError)
    prefix = "HTTP 400 from POST /sales-orders: "
    assert failure.reason.startswith(prefix + "line one line two xxx")
    assert len(failure.reason) == len(prefix) + 200
    assert "token=abc" not in failure.reason
    assert "erp.example.com" not in failure.reason


def test_a_secret_cut_by_the_excerpt_leaves_no_readable_prefix() -> None:
    secret = f"tok-{uuid.uuid4().hex}"
    register_secret(secret)
    failure = classify_response(response(400, "x" * 180 + f" echo {secret}"), StatusPolicy())
    assert failure is not None
    assert secret[:12] not in failure.reason
    assert failure.reason.endswith("[REDACTED]")


def test_reason_without_a_body_has_no_trailing_colon() -> None:
    failure = classify_response(response(404), StatusPolicy())
    assert failure is not None
    assert failure.reason == "HTTP 404 from POST /sales-orders"


def test_policy_precedence_success_then_already_delivered_then_overrides() -> None:
    policy = StatusPolicy.build(
        success=[201], already_delivered=[409], transient=[422], permanent=[503]
    )
    assert classify_response(response(201), policy) is None
    assert isinstance(classify_response(response(200), policy), PermanentError)
    assert classify_response(response(409), policy) is None
    assert isinstance(classify_response(response(422), policy), TransientError)
    assert isinstance(classify_response(response(503), policy), PermanentError)
    assert isinstance(classify_response(response(301), policy), PermanentError)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (httpx.ConnectTimeout("slow"), TransientError),
        (httpx.ReadTimeout("slow"), TransientError),
        (httpx.PoolTimeout("busy"), TransientError),
        (httpx.ConnectError("refused"), TransientError),
        (httpx.ReadError("reset by peer"), TransientError),
        (httpx.WriteError("broken pipe"), TransientError),
        (httpx.RemoteProtocolError("server disconnected"), TransientError),
        (httpx.ProxyError("proxy down"), TransientError),
        (httpx.UnsupportedProtocol("gopher"), PermanentError),
        (httpx.LocalProtocolError("bad header"), PermanentError),
        (httpx.TooManyRedirects("loop"), PermanentError),
    ],
)
def test_transport_failures_are_transient_and_bad_requests_permanent(
    error: httpx.HTTPError, expected: type[Exception]
) -> None:
    failure = classify_exception(error, "PUT", "https://erp.example.com/orders/7?key=secret")
    assert type(failure) is expected
    assert "PUT /orders/7" in failure.reason
    assert "secret" not in failure.reason


def test_status_error_raised_by_a_client_is_classified_by_its_status() -> None:
    error = httpx.HTTPStatusError("boom", request=response(503).request, response=response(503))
    assert isinstance(classify_exception(error, "POST", "https://erp/x"), TransientError)
