"""``api`` source: a synchronous request/response endpoint defined by one OpenAPI operation.

Request path: declared size (413), credentials against the configured secrets (401, before
the body is read), the body read within ``max_body_bytes`` (413) and checked to be UTF-8 JSON
within ``max_depth`` (400) before openapi-core sees it, then the OpenAPI check of path, query,
headers and body (400; RFC 9457 problem+json listing every violation). Each of these answers
carries ``x-correlation-id`` and ``x-request-id``. Then the message goes to the flow and the
caller waits until it is *settled*:

- delivered (or filtered out): 2xx with ``response.body`` mapped from the final payload and
  checked against the operation's response schema (a mismatch is logged and answers 500);
- dead-lettered: 422 when the failure is permanent, 503 (with ``Retry-After``) when transient
  retries ran out; the problem names the failed step, the reason and the message id;
- not settled within ``timeout``: 504 (the message stays in the flow and may still settle).

The answer is the acknowledgement: a caller that gets no answer (the process died) retries,
so requests are not written to the durable inbox. An ``Idempotency-Key`` request header
becomes the message's idempotency key, making such retries safe.

How the outcome is read: the settlement observes every settled part of the message (split
children, copies routed to several sinks), each with the outcome the runner gave it; the ack
resolves the waiting request. Any part dead-lettered → that part's failure is the answer; any
part parked for a later retry → ``202 Accepted`` (it will be delivered; the caller must not
send it again); otherwise the mapped response.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dovetail.connectors.api.config import ApiConfig
from dovetail.connectors.api.contract import (
    OperationContract,
    RequestView,
    ResponseView,
    Violation,
)
from dovetail.connectors.api.credentials import CredentialCheck
from dovetail.connectors.api.problems import problem_response
from dovetail.connectors.http.server import EmbeddedServer, bind_listener
from dovetail.core.ack import Settlement
from dovetail.core.component import BuildContext, Emit
from dovetail.core.envelope import Envelope, SourcePosition
from dovetail.core.ids import correlation_id_from_headers, uuid7
from dovetail.errors import MappingFailed
from dovetail.mapping.jsonata import Expression, compile_expression
from dovetail.plugins.spec import ComponentSpec
from dovetail.safety.limits import nesting_depth

log = structlog.get_logger(__name__)

_DROPPED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "host", "content-length", "connection"}
    | {"keep-alive", "transfer-encoding", "te", "upgrade", "expect"}
)


@dataclass(eq=False)
class _Call:
    """One waiting request: its message and whether it settled."""

    envelope: Envelope
    settled: anyio.Event = field(default_factory=anyio.Event)
    parts: list[Envelope] = field(default_factory=list)
    """Every settled part of the message, with its ``outcome``."""
    abandoned: bool = False
    """The flow stopped before taking the message: answer 503."""


class ApiSource:
    """Serves one OpenAPI operation; each valid request is a message whose outcome is the answer.

    Ack contract: the ack of a message completes its waiting request; nothing is persisted,
    so ``commit()`` does nothing. In ``once`` mode no server is started and ``run`` returns.
    """

    def __init__(self, config: ApiConfig, context: BuildContext) -> None:
        self.config = config
        self._flow = context.flow
        self._once = context.once
        self.contract = OperationContract(context.resolve(config.openapi), config.operation)
        secrets = {
            name: [secret.get_secret_value() for secret in values]
            for name, values in config.auth.items()
        }
        self._credentials = CredentialCheck(self.contract.security, secrets, config.operation)
        self._dropped_headers = _DROPPED_HEADERS | self._credentials.credential_headers
        body = config.response.body
        self._response_body: Expression | None = compile_expression(body) if body else None
        self._socket: socket.socket | None = None
        self._send: MemoryObjectSendStream[_Call] | None = None
        self._pending: set[_Call] = set()
        self.port: int | None = None
        """The bound port once ``open()`` ran (``None`` in once mode)."""

    @property
    def route_path(self) -> str:
        """The URL path served: ``base_path`` + the operation's path template."""
        return self.config.base_path + self.contract.path_template

    async def open(self) -> None:
        """Bind the listening socket (so ``port`` is known before ``run``)."""
        if self._once or self._socket is not None:
            return
        sock = bind_listener(self.config.host, self.config.port)
        self._socket = sock
        self.port = int(sock.getsockname()[1])

    async def run(self, emit: Emit) -> None:
        """Serve until cancelled, handing requests to the flow in batches (once: return)."""
        if self._once:
            return
        if self._socket is None:
            await self.open()
        send, receive = anyio.create_memory_object_stream[_Call](self.config.batch_size)
        self._send = send
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._serve)
                await self._pump(receive, emit)
        finally:
            self._send = None
            send.close()
            receive.close()
            for call in list(self._pending):
                if not call.settled.is_set():
                    call.abandoned = True
                    call.settled.set()

    async def commit(self) -> None:
        """Nothing to persist: the answer to the caller is the acknowledgement."""

    async def close(self) -> None:
        """Release the socket if the server never took it over."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def app(self) -> Starlette:
        """The ASGI app serving the operation (also usable under another server)."""
        route = Route(self.route_path, self._receive, methods=[self.contract.method])
        handlers = {HTTPException: self._refused, Exception: self._failed}
        return Starlette(routes=[route], exception_handlers=handlers)

    async def _refused(self, request: Request, exc: Exception) -> Response:
        """404, 405 and other answers of the router, as problems carrying the ids."""
        status, detail = 400, str(exc)
        if isinstance(exc, HTTPException):
            status, detail = exc.status_code, exc.detail
        if status in (404, 405):
            detail = f"only {self.contract.method} {self.route_path} is served here"
        headers = {**(getattr(exc, "headers", None) or {}), **_ids(request)}
        return problem_response(status, detail, headers=headers)

    async def _failed(self, request: Request, exc: Exception) -> Response:
        """A bug, not the caller's fault: a 500 problem with the ids, no traceback."""
        log.error("api request failed", flow=self._flow, error=repr(exc))
        return problem_response(
            500,
            "internal error; the request was not processed",
            headers=_ids(request),
            type="urn:dovetail:problem:internal-error",
        )

    async def _pump(self, receive: MemoryObjectReceiveStream[_Call], emit: Emit) -> None:
        async for first in receive:
            batch = [first]
            while len(batch) < self.config.batch_size:
                try:
                    batch.append(receive.receive_nowait())
                except anyio.WouldBlock:
                    break
            await emit([call.envelope for call in batch])

    async def _serve(self) -> None:
        assert self._socket is not None
        try:
            await EmbeddedServer(self.app(), self._socket, self.config.server).serve()
        finally:
            self._socket = None

    async def _receive(self, request: Request) -> Response:
        ids = _ids(request)
        limit = self.config.max_body_bytes
        too_large = f"the body is larger than {limit} bytes"
        declared = request.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            return problem_response(413, too_large, headers=ids)
        denial = self._credentials.check(request.headers, request.query_params, request.cookies)
        if denial is not None:
            headers = dict(ids)
            if denial.challenge:
                headers["www-authenticate"] = denial.challenge
            return problem_response(401, denial.detail, headers=headers)
        chunks = bytearray()
        async for chunk in request.stream():
            chunks += chunk
            if len(chunks) > limit:
                return problem_response(413, too_large, headers=ids)
        body = bytes(chunks)
        # Dovetail's own checks come first: openapi-core must never see a body that is not
        # UTF-8 JSON within max_depth (it would recurse into it or fail to decode it)
        try:
            parsed = self._parse(body)
        except ValueError as exc:
            return problem_response(400, str(exc), headers=ids)
        view = self._view(request, body)
        checked = self.contract.check_request(view)
        if checked.violations:
            count = len(checked.violations)
            detail = f"the request does not match operation {self.config.operation!r}"
            return problem_response(
                400, f"{detail} ({count} violation(s))", errors=checked.violations, headers=ids
            )
        envelope = self._envelope(request, parsed, checked.path, checked.query, ids)
        call = _Call(envelope)
        return await self._await_outcome(call, view)

    def _view(self, request: Request, body: bytes) -> RequestView:
        path = request.url.path
        if self.config.base_path:
            path = path[len(self.config.base_path) :] or "/"
        return RequestView(
            method=request.method,
            path=path,
            query=request.query_params,
            headers=request.headers,
            cookies=request.cookies,
            body=body or None,
            content_type=request.headers.get("content-type", ""),
        )

    def _parse(self, body: bytes) -> Any:
        """The JSON body (``None`` when empty); ``ValueError`` saying what is wrong with it."""
        if not body:
            return None
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"the body is not valid UTF-8 (byte {exc.start})") from None
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            if "depth limit" in str(exc):  # orjson stops past 1024 levels, above max_depth
                depth = self.config.max_depth
                raise ValueError(f"the body is nested deeper than {depth} levels") from None
            raise ValueError(f"the body is not valid JSON: {exc}") from None
        depth = self.config.max_depth
        if nesting_depth(value, depth) > depth:
            raise ValueError(f"the body is nested deeper than {depth} levels")
        return value

    def _envelope(
        self,
        request: Request,
        body: Any,
        path: dict[str, Any],
        query: dict[str, Any],
        ids: dict[str, str],
    ) -> Envelope:
        correlation_id, request_id = ids["x-correlation-id"], ids["x-request-id"]
        incoming = _lowered(request.headers)
        headers = {k: v for k, v in incoming.items() if k not in self._dropped_headers}
        headers["x-correlation-id"] = correlation_id
        headers["x-request-id"] = request_id
        if self.config.payload == "request":
            payload: Any = {"body": body, "path": path, "query": query}
        elif self.contract.has_body:
            payload = body
        else:
            payload = {**query, **path}
        return Envelope(
            payload=payload,
            settlement=Settlement(),
            correlation_id=correlation_id,
            headers=headers,
            position=SourcePosition(kind="api", ref=f"request:{request_id}"),
            original=payload,
        )

    async def _await_outcome(self, call: _Call, view: RequestView) -> Response:
        envelope = call.envelope

        async def ack() -> None:
            call.settled.set()

        envelope.settlement = Settlement(ack, observe=call.parts.append)
        send = self._send
        ids = {"x-correlation-id": envelope.correlation_id}
        ids["x-request-id"] = envelope.headers["x-request-id"]
        if send is None:
            return problem_response(503, "the flow is not running", headers=ids)
        self._pending.add(call)
        try:
            try:
                await send.send(call)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return problem_response(503, "the flow is stopping; retry later", headers=ids)
            with anyio.move_on_after(self.config.timeout):
                await call.settled.wait()
        finally:
            self._pending.discard(call)
        if not call.settled.is_set():
            log.warning("api request timed out", flow=self._flow, message_id=envelope.id)
            detail = f"the message did not settle within {self.config.timeout:g}s"
            return problem_response(504, detail, headers=ids, message_id=envelope.id)
        if call.abandoned:
            return problem_response(503, "the flow stopped; retry later", headers=ids)
        return self._answer(envelope, view, ids, call.parts)

    def _answer(
        self, envelope: Envelope, view: RequestView, ids: dict[str, str], parts: list[Envelope]
    ) -> Response:
        dead = [p for p in parts if p.outcome == "dead_lettered" and p.failure is not None]
        failure = dead[0].failure if dead else envelope.failure
        if not dead and any(p.outcome == "parked" for p in parts):
            body = {
                "status": "accepted",
                "detail": "a target is unavailable; the message is kept and will be delivered",
                "message_id": envelope.id,
                "correlation_id": envelope.correlation_id,
            }
            return Response(orjson.dumps(body), 202, headers=ids, media_type="application/json")
        if failure is not None:
            status = 422 if failure.permanent else 503
            headers = dict(ids)
            if status == 503:
                headers["retry-after"] = str(max(1, round(failure.retry_after or 1)))
            return problem_response(
                status,
                failure.reason,
                headers=headers,
                step=failure.step,
                message_id=envelope.id,
                correlation_id=envelope.correlation_id,
            )
        try:
            body = self._map_response(envelope)
            data = None if body is None else _dump_json(body)
        except (MappingFailed, TypeError, ValueError) as exc:
            return self._contract_broken(envelope, [Violation("response", str(exc))], ids)
        status = self.config.response.status
        violations = self.contract.check_response(
            view, ResponseView(status, data, "application/json", headers=ids)
        )
        if violations:
            return self._contract_broken(envelope, violations, ids)
        if data is None:
            return Response(status_code=status, headers=ids)
        return Response(data, status, headers=ids, media_type="application/json")

    def _map_response(self, envelope: Envelope) -> Any:
        expression = self._response_body
        if expression is None:
            return envelope.payload
        bindings = {
            "message_id": envelope.id,
            "correlation_id": envelope.correlation_id,
            "request_id": envelope.headers.get("x-request-id"),
        }
        return expression.evaluate(envelope.payload, bindings)

    def _contract_broken(
        self, envelope: Envelope, violations: list[Violation], ids: dict[str, str]
    ) -> Response:
        log.error(
            "api response does not match the operation's response schema",
            flow=self._flow,
            operation=self.config.operation,
            message_id=envelope.id,
            correlation_id=envelope.correlation_id,
            violations=[v.as_dict() for v in violations],
        )
        return problem_response(
            500,
            "the response does not match the API contract; the message was processed",
            errors=violations,
            headers=ids,
            message_id=envelope.id,
        )


def _dump_json(value: Any) -> bytes:
    """``value`` as JSON; integers past 64 bits (which orjson refuses) through ``json``."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")


def _ids(request: Request) -> dict[str, str]:
    """The answer headers naming a request: its correlation id and a new request id."""
    return {
        "x-correlation-id": correlation_id_from_headers(_lowered(request.headers)),
        "x-request-id": uuid7(),
    }


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()}


SPEC = ComponentSpec(
    kind="source",
    name="api",
    config=ApiConfig,
    factory=lambda config, context: ApiSource(config, context),
    status="beta",
    summary="Serve an OpenAPI operation: validate, run the flow, answer with its outcome.",
    description=(
        "Listens on `host:port` for the operation named `operation` in the project's"
        " OpenAPI 3 document (its path under `base_path`, its method). Credentials of the"
        " operation's security schemes (apiKey, http bearer, http basic) are compared in"
        " constant time with the secrets in `auth`: missing or wrong ones get `401`; a scheme"
        " without secrets is a lint error. A body over `max_body_bytes` gets `413`; one that is"
        " not UTF-8 JSON within `max_depth` levels `400`. The rest of the request (parameters,"
        " body schema) is checked against the operation; a violation is answered `400` as RFC"
        " 9457 `application/problem+json` with an `errors` list naming each violation (`in`,"
        " `pointer`, `detail`).\n\n"
        "A valid request becomes a message and the caller waits while the flow's steps and"
        " sinks run. Once the message is settled the caller gets: the `response.status` with"
        " `response.body` (JSONata over the final payload) when it was delivered or filtered"
        " out — checked against the operation's response schema, a mismatch being logged and"
        " answered `500`; `422` when it was dead-lettered for a permanent reason; `503` with"
        " `Retry-After` when transient retries ran out; `504` when it did not settle within"
        " `timeout`. Every answer carries `x-correlation-id` and `x-request-id`.\n\n"
        "The answer is the acknowledgement: a caller that gets none retries. Send an"
        " `Idempotency-Key` header (or declare `delivery.idempotency_key`) so a retry is not"
        " delivered twice. `dovetail run --once` starts no server. Needs the `api` extra."
    ),
    examples=[
        "api:\n  openapi: schemas/orders-api.yaml\n  operation: createOrder\n  port: 8080\n"
        "  auth: {partner_key: ['${secret:ORDERS_API_KEY}']}\n"
        '  response: {status: 201, body: \'{"order_id": order_id, "status": "accepted"}\'}',
        "api:\n  openapi: schemas/orders-api.yaml\n  operation: getOrder\n  port: 8080\n"
        "  auth:\n    partner_key: ['${secret:ORDERS_API_KEY}', '${secret:ORDERS_API_KEY_NEXT}']",
    ],
    extra="api",
    modules=("openapi_core",),
)
