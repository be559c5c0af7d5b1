"""``http`` sink: deliver each message as a JSON request to a REST endpoint."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import anyio
import httpx
import orjson
from pydantic import Field, field_validator, model_validator

from dovetail.config.fields import holds_reference
from dovetail.config.types import Duration, Rate
from dovetail.connectors.http.auth import AuthConfig, Authenticator, build_authenticator
from dovetail.connectors.http.classify import (
    StatusPolicy,
    classify_exception,
    classify_response,
    describe_request,
)
from dovetail.connectors.http.soap import SoapConfig, SoapOperation
from dovetail.connectors.http.url_template import UrlTemplate
from dovetail.contracts.config import Contract
from dovetail.core.attempts import Attempt, with_cause
from dovetail.core.component import BuildContext
from dovetail.core.envelope import Envelope
from dovetail.core.ids import make_traceparent
from dovetail.core.pacing import pace_request
from dovetail.errors import MessageError, PermanentError, TransientError
from dovetail.plugins.spec import ComponentConfig, ComponentSpec

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


class HttpSinkConfig(ComponentConfig):
    url: str
    """Target URL. `{field}` placeholders in the path or query are filled from the payload's
    top-level fields (URL-encoded); the host can never come from the payload, and a value
    that would make a path segment empty, `.` or `..` (in any encoding) is dead-lettered."""
    method: Literal["POST", "PUT", "PATCH", "DELETE"] = "POST"
    """HTTP method. POST, PUT and PATCH send the payload as the JSON body; DELETE sends none."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra request headers."""
    auth: AuthConfig | None = None
    """Authentication: exactly one of `basic`, `bearer`, `api_key`, `oauth2_client_credentials`."""
    success: list[int] | None = None
    """Status codes that confirm delivery; default: any 2xx."""
    already_delivered: list[int] = Field(default_factory=list)
    """Status codes meaning the target already has the message (e.g. 409): counted as delivered."""
    permanent: list[int] = Field(default_factory=list)
    """Status codes to dead-letter without retrying, overriding the defaults."""
    transient: list[int] = Field(default_factory=list)
    """Status codes to retry, overriding the defaults (408, 425, 429, 5xx except 501/505)."""
    timeout: Duration = 30.0
    """Time allowed for each request (connect, send and read)."""
    concurrency: int = Field(default=8, ge=1, le=256)
    """Maximum requests in flight at once."""
    rate_limit: Rate | None = None
    """Maximum requests per second (`20/s`, `600/m`); enforced by the delivery layer."""
    contract: Contract | None = None
    """The partner's API operation (`schemas/erp-openapi.yaml#createSalesOrder`, or
    `{openapi: file, operation: id, enforce: true}`) or a `{json_schema: file}` the output must
    satisfy: checked by `dovetail test`, and before sending when `enforce` is true."""
    soap: SoapConfig | None = None
    """Call a SOAP operation described by a WSDL instead of sending JSON: the payload's
    top-level fields are the operation's parameters. Needs the `soap` extra (zeep)."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if holds_reference(value):
            return value  # lenient loading (lint without --env): the final URL is checked at run
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL with a host, found {value!r}")
        if "{" in parts.netloc or "}" in parts.netloc:
            raise ValueError("placeholders are only allowed in the URL's path and query")
        return value

    @field_validator("success", "already_delivered", "permanent", "transient")
    @classmethod
    def _check_codes(cls, value: list[int] | None) -> list[int] | None:
        for code in value or ():
            if not 100 <= code <= 599:
                raise ValueError(f"{code} is not an HTTP status code (100-599)")
        return value

    @model_validator(mode="after")
    def _check_overrides(self) -> HttpSinkConfig:
        both = sorted(set(self.permanent) & set(self.transient))
        if both:
            raise ValueError(f"status codes {both} are listed as both permanent and transient")
        if self.soap is not None and (self.method != "POST" or self.contract is not None):
            raise ValueError("soap calls are POSTed and are checked by the WSDL, not contract")
        return self

    def status_policy(self) -> StatusPolicy:
        """The classification rules this config declares."""
        return StatusPolicy.build(
            success=self.success,
            already_delivered=self.already_delivered,
            transient=self.transient,
            permanent=self.permanent,
        )


class HttpSink:
    """Sends one request per message, concurrently, on one shared connection pool.

    ``write`` never raises for a message: each result is ``None`` (the target confirmed or
    already had it) or the translated failure. Headers carry ``traceparent`` and
    ``x-correlation-id`` from the envelope and ``Idempotency-Key`` when the delivery layer set
    the ``idempotency-key`` header. After a 401, OAuth2 credentials are renewed once and the
    request is sent again once.
    """

    name = "http"
    paces_requests = True
    """Each request (a resend after 401 too) waits for its rate-limit turn as it leaves."""

    def __init__(self, config: HttpSinkConfig, context: BuildContext) -> None:
        self.config = config
        self._flow = context.flow
        self._policy = config.status_policy()
        self._url = UrlTemplate(config.url)
        self._auth: Authenticator = build_authenticator(config.auth)
        self._limiter = anyio.CapacityLimiter(config.concurrency)
        self._client: httpx.AsyncClient | None = None
        self._soap = SoapOperation(config.soap, context) if config.soap is not None else None

    @property
    def authenticator(self) -> Authenticator:
        """How requests are authenticated (OAuth2 exposes ``tokens_fetched``)."""
        return self._auth

    async def open(self) -> None:
        """Open the shared HTTP client (connection pool sized to ``concurrency``) and load the
        WSDL of a SOAP call (``ConfigError`` when it does not hold the operation)."""
        if self._soap is not None:
            await self._soap.load()
        if self._client is None:
            self._client = self._auth.make_client(
                timeout=httpx.Timeout(self.config.timeout),
                limits=httpx.Limits(max_connections=self.config.concurrency),
                follow_redirects=False,
                headers={"user-agent": "dovetail", **self.config.headers},
            )

    async def close(self) -> None:
        """Close the client and its connections."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
        """Send every message of ``batch``; return per message ``None`` or its failure."""
        if self._client is None:
            await self.open()
        results: list[BaseException | None] = [None] * len(batch)

        async def deliver(index: int, envelope: Envelope) -> None:
            async with self._limiter:
                results[index] = await self._deliver(envelope)

        async with anyio.create_task_group() as group:
            for index, envelope in enumerate(batch):
                group.start_soon(deliver, index, envelope)
        return results

    def target_url(self, payload: Any) -> str:
        """The URL for ``payload``: placeholders filled, URL-encoded, host checked.

        Raises ``PermanentError`` when a placeholder has no usable value, a filled path
        segment would be empty or a dot segment (``..`` climbs the path), or the filled URL
        would reach another host.
        """
        return self._url.fill(payload)

    async def _deliver(self, envelope: Envelope) -> MessageError | None:
        assert self._client is not None
        method = self.config.method
        headers = self._message_headers(envelope)
        body: bytes | None
        try:
            url = self.target_url(envelope.payload)
            if self._soap is not None:
                body, soap_headers = self._soap.request(envelope.payload)
                headers.update(soap_headers)
            else:
                body = None if method == "DELETE" else orjson.dumps(envelope.payload)
        except PermanentError as exc:
            return exc
        except TypeError as exc:  # orjson: a value JSON cannot represent
            return PermanentError(f"payload cannot be sent as JSON: {exc}")
        try:
            auth_headers = await self._auth.headers(self._client)
            response = await self._send(method, url, body, {**headers, **auth_headers})
            if response.status_code == 401 and await self._auth.renew(self._client, auth_headers):
                envelope.attempts.append(
                    Attempt(envelope.attempt, "HTTP 401 → token renewed", event="token_renewed")
                )
                auth_headers = await self._auth.headers(self._client)
                response = await self._send(method, url, body, {**headers, **auth_headers})
        except MessageError as exc:
            return exc
        except httpx.HTTPError as exc:
            return classify_exception(exc, method, url)
        if self._soap is not None:
            return self._soap.outcome(response, self._policy)
        return classify_response(response, self._policy)

    async def _send(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> httpx.Response:
        assert self._client is not None
        await pace_request()  # the rate limit's token is spent as the request leaves
        with anyio.move_on_after(self.config.timeout) as deadline:
            return await self._client.request(
                method, url, content=body, headers=headers, **_withhold_token(self._client)
            )
        assert deadline.cancelled_caught
        raise with_cause(
            TransientError(
                f"timeout after {self.config.timeout:g}s on {describe_request(method, url)}"
            ),
            f"timeout after {self.config.timeout:g}s",
        )

    @staticmethod
    def _message_headers(envelope: Envelope) -> dict[str, str]:
        correlation_id = envelope.correlation_id
        headers = {"content-type": "application/json"}
        if correlation_id:
            headers["x-correlation-id"] = _header_safe(correlation_id)
        if _TRACE_ID.match(correlation_id) and correlation_id != "0" * 32:
            headers["traceparent"] = make_traceparent(correlation_id)
        key = envelope.headers.get("idempotency-key")
        if key:
            headers["idempotency-key"] = _header_safe(key)
        return headers


def _header_safe(value: str) -> str:
    # Header values must be visible ASCII; anything else is percent-encoded, deterministically,
    # so a retried request carries the same key.
    return value if value.isascii() and value.isprintable() else quote(value, safe="")


def _withhold_token(client: httpx.AsyncClient) -> dict[str, Any]:
    # authlib's client would otherwise insist on attaching (and maybe re-fetching) its token
    # itself; the authenticator has already put the current one into the headers.
    return {"withhold_token": True} if hasattr(client, "fetch_token") else {}


SPEC = ComponentSpec(
    kind="sink",
    name="http",
    config=HttpSinkConfig,
    factory=lambda config, context: HttpSink(config, context),
    summary="Deliver each message as a JSON request to a REST API, or as a SOAP call.",
    description=(
        "Sends the payload as a JSON body with `traceparent`, `x-correlation-id` and, when an"
        " idempotency key is declared, `Idempotency-Key` headers. Up to `concurrency` requests"
        " are in flight at once over one connection pool.\n\n"
        "Outcomes: a 2xx (or a code in `success`) is delivered; codes in `already_delivered`"
        " (e.g. 409) count as delivered; 408, 425, 429 and 5xx other than 501/505, timeouts"
        " and connection errors are retried, honouring `Retry-After`; every other status is"
        " dead-lettered with the reason `HTTP 422 from POST /path: <start of the response"
        " body>`. `transient` and `permanent` override single codes.\n\n"
        "OAuth2 client-credentials tokens are fetched on first use, reused until shortly"
        " before they expire, and renewed once when the API answers 401.\n\n"
        "`{field}` placeholders in the URL path or query are filled from the payload,"
        " URL-encoded; a filled URL must keep the configured host, so message content cannot"
        " redirect requests elsewhere. A value that would make a path segment empty or a dot"
        " segment (`.`, `..`, or a form decoding to one such as `%2e%2e` or `../`) is"
        " dead-lettered (permanent failure), as the request would climb to another resource."
        "\n\n"
        "With `soap`, each message calls a SOAP operation from a WSDL (SOAP 1.1 or 1.2): the"
        " payload's top-level fields become the operation's parameters, the envelope is built"
        " and POSTed to `url` with the binding's `SOAPAction`. A SOAP Fault is dead-lettered"
        " with its code and text, unless they name a transient condition (`transient_faults`,"
        " e.g. server busy), which is retried; HTTP 5xx without a Fault is retried."
    ),
    examples=[
        "http:\n  url: https://erp.example.com/sales-orders\n"
        "  auth: {bearer: {token: '${secret:ERP_TOKEN}'}}",
        "http:\n  url: https://erp.example.com/sales-orders/{order_id}\n  method: PUT\n"
        "  auth:\n    oauth2_client_credentials:\n"
        "      token_url: https://login.example.com/oauth/token\n"
        "      client_id: ${secret:ERP_CLIENT_ID}\n"
        "      client_secret: ${secret:ERP_CLIENT_SECRET}\n"
        "  already_delivered: [409]\n  rate_limit: 20/s",
        "http:\n  url: https://erp.example.com/soap/orders\n"
        "  soap: {wsdl: 'https://erp.example.com/soap/orders?wsdl', operation: CreateSalesOrder}\n"
        "  auth: {basic: {username: dovetail, password: '${secret:ERP_PASSWORD}'}}",
    ],
)
