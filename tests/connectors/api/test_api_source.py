"""The api source over real HTTP, inside the real runner: validate, run the flow, answer."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest

from dovetail.api import run_flow_async
from dovetail.config.loader import load_flow
from dovetail.connectors.api.config import ApiConfig
from dovetail.connectors.api.contract import ContractError, OperationContract
from dovetail.connectors.api.source import SPEC, ApiSource
from dovetail.core.envelope import Envelope
from dovetail.errors import PermanentError, TransientError
from dovetail.runtime.runner import FlowRunner
from dovetail.store.sqlite import SqliteStore
from dovetail.testing.components import build_component
from dovetail.testing.crash import dovetail_executable, listening
from dovetail.testing.fakes import CaptureSink

OPENAPI = """\
openapi: 3.1.0
info: {title: Orders, version: 1.0.0}
servers: [{url: "https://api.example.com/v1"}]
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-API-Key}
  schemas:
    Accepted:
      type: object
      required: [order_id, status]
      additionalProperties: false
      properties:
        order_id: {type: string}
        status: {type: string, enum: [accepted]}
paths:
  /orders:
    post:
      operationId: createOrder
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [order_id, total]
              properties:
                order_id: {type: string, minLength: 1}
                total: {type: number, minimum: 0}
      responses:
        "201":
          description: accepted
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Accepted"}
  /orders/{order_id}:
    get:
      operationId: getOrder
      security: [{key: []}]
      parameters:
        - {name: order_id, in: path, required: true, schema: {type: integer}}
        - {name: verbose, in: query, schema: {type: boolean}}
      responses:
        "200":
          description: the order
          content:
            application/json:
              schema:
                type: object
                required: [order_id]
                properties:
                  order_id: {type: integer}
                  verbose: {type: boolean}
"""

CREATE = """\
flow: orders-api
version: 1.0.0
source:
  api:
    openapi: schemas/orders-api.yaml
    operation: createOrder
    port: {port}
    timeout: {timeout}
    response: {{status: 201, body: '{body}'}}
steps:
  - map: {{jsonata: '{{"order_id": order_id, "amount": total}}'}}
sink:
  file: {{path: out/orders.jsonl, format: jsonl}}
delivery: {{retry: {{attempts: 1}}}}
"""

ACCEPTED = '{"order_id": order_id, "status": "accepted"}'


def write_project(project: Path, flow: str) -> Path:
    (project / "schemas").mkdir(exist_ok=True)
    (project / "schemas" / "orders-api.yaml").write_text(OPENAPI)
    path = project / "flows" / "orders-api.yaml"
    path.write_text(flow)
    return path


def create_flow(port: int = 0, timeout: str = "5s", body: str = ACCEPTED) -> str:
    return CREATE.format(port=port, timeout=timeout, body=body)


class ScriptedSink(CaptureSink):
    """Captures payloads; fails orders by their id (``PERM-*`` permanent, ``TEMP-*`` transient),
    and waits ``delay`` seconds per write."""

    delay = 0.0

    async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
        if self.delay:
            await anyio.sleep(self.delay)
        results: list[BaseException | None] = []
        for envelope in batch:
            order = str(envelope.payload.get("order_id", ""))
            if order.startswith("PERM"):
                results.append(PermanentError("HTTP 422 from POST /sales-orders: unknown SKU"))
            elif order.startswith("TEMP"):
                results.append(TransientError("HTTP 503 from POST /sales-orders", retry_after=7))
            else:
                self.received.append(envelope.payload)
                self.envelopes.append(envelope)
                results.append(None)
        return results


@asynccontextmanager
async def serving(project: Path, flow_text: str, sink: CaptureSink) -> AsyncIterator[str]:
    """Run the flow (api source, real runner) with ``sink`` captured; yields the base URL."""
    flow = load_flow(write_project(project, flow_text))
    store = SqliteStore(project / ".dovetail" / "state.db")
    await store.open()
    runners: list[FlowRunner] = []
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(
                lambda: run_flow_async(
                    flow,
                    store=store,
                    once=False,
                    sinks=dict.fromkeys(flow.sinks, sink),
                    runner_ready=runners,
                )
            )
            with anyio.fail_after(10):
                # the runner offers no event for "source opened": look every 10 ms
                while not runners or getattr(runners[0].pipeline.source, "port", None) is None:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
            source = runners[0].pipeline.source
            assert isinstance(source, ApiSource)
            try:
                yield f"http://127.0.0.1:{source.port}"
            finally:
                runners[0].stop()
    finally:
        await store.close()


def call(
    project: Path,
    flow_text: str,
    requests: list[tuple[str, str, Any, dict[str, str]]],
    sink: CaptureSink | None = None,
) -> list[httpx.Response]:
    sink = sink or ScriptedSink("file")
    answers: list[httpx.Response] = []

    async def main() -> None:
        async with serving(project, flow_text, sink) as base, httpx.AsyncClient() as client:
            for method, path, body, headers in requests:
                content = body if isinstance(body, bytes) else orjson.dumps(body)
                answers.append(
                    await client.request(
                        method,
                        base + path,
                        content=None if body is None else content,
                        headers={"content-type": "application/json", **headers},
                        timeout=10,
                    )
                )

    anyio.run(main)
    return answers


def test_valid_request_gets_the_mapped_body_after_delivery(project: Path) -> None:
    sink = ScriptedSink("file")
    trace = "0af7651916cd43dd8448eb211c80319c"
    headers = {"traceparent": f"00-{trace}-b7ad6b7169203331-01"}
    (answer,) = call(
        project,
        create_flow(),
        [("POST", "/orders", {"order_id": "SO-1", "total": 12.5}, headers)],
        sink,
    )
    assert answer.status_code == 201
    assert answer.json() == {"order_id": "SO-1", "status": "accepted"}
    assert answer.headers["x-correlation-id"] == trace
    assert sink.received == [{"order_id": "SO-1", "amount": 12.5}]
    assert sink.envelopes[0].correlation_id == trace


def test_invalid_request_is_400_problem_listing_each_violation(project: Path) -> None:
    sink = ScriptedSink("file")
    (answer,) = call(
        project, create_flow(), [("POST", "/orders", {"order_id": "", "total": -1}, {})], sink
    )
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["status"] == 400
    assert problem["title"] == "Bad Request"
    assert problem["type"].startswith("urn:dovetail:problem:")
    assert "createOrder" in problem["detail"]
    pointers = {item["pointer"]: item for item in problem["errors"]}
    assert set(pointers) == {"/order_id", "/total"}
    assert all(item["in"] == "body" for item in problem["errors"])
    assert "minimum" in pointers["/total"]["detail"]
    assert sink.received == []


def test_missing_body_and_malformed_json_are_400(project: Path) -> None:
    answers = call(
        project,
        create_flow(),
        [("POST", "/orders", None, {}), ("POST", "/orders", b'{"order_id": ', {})],
    )
    assert [a.status_code for a in answers] == [400, 400]
    assert answers[0].json()["errors"] == [{"in": "body", "detail": "a request body is required"}]


def test_permanent_failure_is_422_and_transient_is_503_with_retry_after(project: Path) -> None:
    answers = call(
        project,
        create_flow(),
        [
            ("POST", "/orders", {"order_id": "PERM-1", "total": 1}, {}),
            ("POST", "/orders", {"order_id": "TEMP-1", "total": 1}, {}),
        ],
    )
    rejected, unavailable = answers
    assert rejected.status_code == 422
    assert rejected.headers["content-type"] == "application/problem+json"
    problem = rejected.json()
    assert problem["detail"] == "HTTP 422 from POST /sales-orders: unknown SKU"
    assert problem["step"] == "sink:sink"  # a single `sink:` is named "sink"
    assert problem["message_id"]
    assert unavailable.status_code == 503
    assert unavailable.headers["retry-after"] == "7"


def test_response_not_matching_the_contract_is_500_and_logged(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = create_flow(body='{"order_id": order_id, "status": "maybe"}')
    sink = ScriptedSink("file")
    (answer,) = call(
        project, flow, [("POST", "/orders", {"order_id": "SO-2", "total": 1}, {})], sink
    )
    assert answer.status_code == 500
    problem = answer.json()
    assert problem["errors"][0]["in"] == "response"
    assert "accepted" in problem["errors"][0]["detail"]
    assert sink.received == [{"order_id": "SO-2", "amount": 1}]  # processed all the same
    assert "does not match the operation's response schema" in capsys.readouterr().out


def test_message_not_settled_in_time_is_504(project: Path) -> None:
    sink = ScriptedSink("file")
    sink.delay = 1.0
    (answer,) = call(
        project,
        create_flow(timeout="200ms"),
        [("POST", "/orders", {"order_id": "SO-3", "total": 1}, {})],
        sink,
    )
    assert answer.status_code == 504
    assert answer.json()["message_id"]


def test_idempotency_key_header_makes_a_retried_call_a_duplicate(project: Path) -> None:
    sink = ScriptedSink("file")
    body = {"order_id": "SO-4", "total": 3}
    headers = {"idempotency-key": "req-4"}
    answers = call(
        project,
        create_flow(),
        [("POST", "/orders", body, headers), ("POST", "/orders", body, headers)],
        sink,
    )
    assert [a.status_code for a in answers] == [201, 201]
    assert sink.received == [{"order_id": "SO-4", "amount": 3}]


GET_FLOW = """\
flow: orders-api
version: 1.0.0
source:
  api:
    openapi: schemas/orders-api.yaml
    operation: getOrder
    base_path: /v1
    auth: {key: [k-1]}
sink:
  file: {path: out/orders.jsonl, format: jsonl}
"""


def test_operation_without_body_gets_typed_parameters_and_security_is_checked(
    project: Path,
) -> None:
    sink = ScriptedSink("file")
    key = {"x-api-key": "k-1"}
    answers = call(
        project,
        GET_FLOW,
        [
            ("GET", "/v1/orders/42?verbose=true", None, key),
            ("GET", "/v1/orders/42", None, {}),
            ("GET", "/v1/orders/abc", None, key),
        ],
        sink,
    )
    assert [a.status_code for a in answers] == [200, 401, 400]
    assert answers[0].json() == {"order_id": 42, "verbose": True}
    assert sink.received == [{"order_id": 42, "verbose": True}]
    assert "x-api-key" not in sink.envelopes[0].headers  # credentials stay out of the message
    assert answers[2].json()["errors"][0]["in"] == "path"
    assert answers[2].json()["errors"][0]["pointer"] == "order_id"


def test_body_over_the_limit_is_413(project: Path) -> None:
    flow = create_flow().replace("    port: 0\n", "    port: 0\n    max_body_bytes: 64\n")
    big = {"order_id": "x" * 100, "total": 1}
    (answer,) = call(project, flow, [("POST", "/orders", big, {})])
    assert answer.status_code == 413


def test_unknown_operation_names_the_ones_found(project: Path) -> None:
    write_project(project, create_flow())
    with pytest.raises(ContractError, match="createOrder, getOrder"):
        OperationContract(project / "schemas" / "orders-api.yaml", "deleteOrder")


@pytest.mark.parametrize("example", SPEC.examples)
def test_spec_examples_build(example: str, project: Path) -> None:
    """The examples name the OpenAPI document the documentation's examples use."""
    write_project(project, create_flow())
    documented = Path(__file__).parents[2] / "docs_fixtures" / "schemas" / "orders-api.yaml"
    shutil.copyfile(documented, project / "schemas" / "orders-api.yaml")
    assert isinstance(build_component("source", example, project), ApiSource)


def test_every_config_field_is_documented() -> None:
    schema = ApiConfig.model_json_schema()
    for name, field in schema["properties"].items():
        assert field.get("description"), f"api.{name} has no description"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.timeout(60)
def test_dovetail_run_serves_the_operation_end_to_end(project: Path) -> None:
    port = free_port()
    write_project(project, create_flow(port=port))
    process = subprocess.Popen(
        [str(dovetail_executable()), "run", "orders-api"],
        cwd=project,
        env={**os.environ, "NO_COLOR": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not listening(port):
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            assert time.monotonic() < deadline, "dovetail run did not start listening"
            time.sleep(0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            ok = client.post("/orders", json={"order_id": "SO-9", "total": 9})
            bad = client.post("/orders", json={"total": "nine"})
        assert ok.status_code == 201, ok.text
        assert ok.json() == {"order_id": "SO-9", "status": "accepted"}
        assert bad.status_code == 400
        written = (project / "out" / "orders.jsonl").read_text().splitlines()
        assert [orjson.loads(line) for line in written] == [{"order_id": "SO-9", "amount": 9}]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0


SPLIT = """\
flow: orders-api
version: 1.0.0
source:
  api:
    openapi: schemas/orders-api.yaml
    operation: createOrder
    port: 0
    timeout: 5s
    response: {status: 201, body: '{"order_id": order_id, "status": "accepted"}'}
steps:
  - split: {path: '[$, {"order_id": parts, "total": total}]'}
sink:
  file: {path: out/orders.jsonl, format: jsonl}
delivery: {retry: {attempts: 1}}
"""


def test_a_failed_split_child_fails_the_call(project: Path) -> None:
    """The request's message is split in two; the second child is rejected by the sink."""
    ok, rejected = call(
        project,
        SPLIT,
        [
            ("POST", "/orders", {"order_id": "A-1", "total": 1, "parts": "B-1"}, {}),
            ("POST", "/orders", {"order_id": "A-2", "total": 1, "parts": "PERM-2"}, {}),
        ],
    )
    assert ok.status_code == 201, ok.text
    assert rejected.status_code == 422, rejected.text
    assert rejected.json()["detail"] == "HTTP 422 from POST /sales-orders: unknown SKU"


class ParkingSink(CaptureSink):
    """Answers 429 with a Retry-After of two minutes: the message is parked."""

    async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
        return [TransientError("HTTP 429", retry_after=120) for _ in batch]


def test_a_parked_message_is_202_accepted(project: Path) -> None:
    flow = create_flow().replace(
        "delivery: {retry: {attempts: 1}}", "delivery: {retry: {attempts: 3, max: 5m}}"
    )
    (answer,) = call(
        project, flow, [("POST", "/orders", {"order_id": "A-9", "total": 1}, {})], ParkingSink("f")
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "accepted"
