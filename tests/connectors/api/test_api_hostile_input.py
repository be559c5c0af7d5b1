"""Malformed requests to the api source get a 4xx problem+json with ids, never a 500."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from tests.connectors.api.test_api_source import (
    GET_FLOW,
    ScriptedSink,
    call,
    create_flow,
    write_project,
)

DEEP = b'{"order_id": "SO-1", "total": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
VALID = {"order_id": "SO-1", "total": 1}
KEY = {"x-api-key": "k-1"}


def assert_problem(answer: httpx.Response, status: int, detail: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["x-correlation-id"]
    assert answer.headers["x-request-id"]
    problem = answer.json()
    assert problem["status"] == status
    assert detail in problem["detail"]
    assert "Traceback" not in answer.text


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (DEEP, "the body is nested deeper than 64 levels"),
        (b'{"order_id": "SO-1", "x": ' + b"[" * 70 + b"]" * 70 + b"}", "nested deeper than 64"),
        (b'{"order_id": "SO-\xff\xfe", "total": 1}', "the body is not valid UTF-8 (byte 17)"),
        (b'{"order_id": "\xed\xa0\x80", "total": 1}', "the body is not valid UTF-8 (byte 14)"),
        (b'{"order_id": "SO-1", "total": NaN}', "the body is not valid JSON"),
        (b"\xef\xbb\xbf" + b'{"order_id": "SO-1", "total": 1}', "the body is not valid JSON"),
    ],
)
def test_a_malformed_body_is_400_and_the_source_keeps_serving(
    project: Path, body: bytes, detail: str
) -> None:
    sink = ScriptedSink("file")
    bad, good = call(
        project,
        create_flow(),
        [("POST", "/orders", body, {}), ("POST", "/orders", VALID, {})],
        sink,
    )
    assert_problem(bad, 400, detail)
    assert good.status_code == 201, good.text
    assert sink.received == [{"order_id": "SO-1", "amount": 1}]


def test_a_correlation_id_sent_by_the_caller_comes_back_on_a_400(project: Path) -> None:
    (answer,) = call(
        project,
        create_flow(),
        [("POST", "/orders", b"[", {"x-correlation-id": "order-batch-77"})],
    )
    assert_problem(answer, 400, "the body is not valid JSON")
    assert answer.headers["x-correlation-id"] == "order-batch-77"


def test_a_413_carries_the_ids(project: Path) -> None:
    flow = create_flow().replace("    port: 0\n", "    port: 0\n    max_body_bytes: 64\n")
    (answer,) = call(project, flow, [("POST", "/orders", {"order_id": "x" * 100}, {})])
    assert_problem(answer, 413, "the body is larger than 64 bytes")


def test_other_paths_and_methods_are_problems_with_ids(project: Path) -> None:
    missing, wrong_method = call(
        project,
        create_flow(),
        [("POST", "/orders/x/..%2f", VALID, {}), ("DELETE", "/orders", None, {})],
    )
    assert_problem(missing, 404, "only POST /orders is served here")
    assert_problem(wrong_method, 405, "only POST /orders is served here")
    assert wrong_method.headers["allow"] == "POST"


def test_a_request_openapi_core_cannot_check_is_400_not_500(project: Path) -> None:
    """openapi-core raises ValueError on a media-type parameter without a value."""
    sink = ScriptedSink("file")
    bad, good = call(
        project,
        create_flow(),
        [
            ("POST", "/orders", VALID, {"content-type": "application/json; charset"}),
            ("POST", "/orders", VALID, {}),
        ],
        sink,
    )
    assert_problem(bad, 400, "the request does not match operation 'createOrder'")
    assert bad.json()["errors"] == [
        {"in": "request", "detail": "the request could not be checked against the operation"}
    ]
    assert good.status_code == 201
    assert sink.received == [{"order_id": "SO-1", "amount": 1}]


def test_declared_id_headers_satisfy_the_response_contract(project: Path) -> None:
    """A document requiring x-correlation-id on the 201 answer is met, not a 500."""
    write_project(project, create_flow())
    spec = project / "schemas" / "orders-api.yaml"
    declared = (
        "          description: accepted\n          headers:\n            x-correlation-id:"
        " {required: true, schema: {type: string}}\n"
    )
    text = spec.read_text().replace("          description: accepted\n", declared, 1)
    flow = create_flow().replace("schemas/orders-api.yaml", "schemas/with-headers.yaml")
    (project / "schemas" / "with-headers.yaml").write_text(text)
    (answer,) = call(project, flow, [("POST", "/orders", VALID, {"x-correlation-id": "c-1"})])
    assert answer.status_code == 201, answer.text
    assert answer.headers["x-correlation-id"] == "c-1"


def test_an_integer_past_64_bits_is_answered_exactly(project: Path) -> None:
    big = 99999999999999999999999999
    sink = ScriptedSink("file")
    (answer,) = call(project, GET_FLOW, [("GET", f"/v1/orders/{big}", None, KEY)], sink)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"order_id": big}
    assert sink.received == [{"order_id": big}]


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-Infinity", "1e999"])
def test_a_number_parameter_that_is_not_finite_is_400(project: Path, value: str) -> None:
    write_project(project, GET_FLOW)
    spec = project / "schemas" / "orders-api.yaml"
    declared = "        - {name: min_total, in: query, schema: {type: number}}\n"
    text = spec.read_text().replace(
        "        - {name: verbose, in: query, schema: {type: boolean}}\n",
        "        - {name: verbose, in: query, schema: {type: boolean}}\n" + declared,
    )
    (project / "schemas" / "with-number.yaml").write_text(text)
    flow = GET_FLOW.replace("schemas/orders-api.yaml", "schemas/with-number.yaml")
    sink = ScriptedSink("file")
    bad, good = call(
        project,
        flow,
        [
            ("GET", f"/v1/orders/1?min_total={value}", None, KEY),
            ("GET", "/v1/orders/1?min_total=2.5", None, KEY),
        ],
        sink,
    )
    assert_problem(bad, 400, "does not match operation 'getOrder'")
    assert bad.json()["errors"][0]["pointer"] == "min_total"
    assert "is not a finite number" in bad.json()["errors"][0]["detail"]
    assert good.status_code == 200, good.text
    assert sink.received == [{"order_id": 1, "min_total": 2.5}]
