"""Fetch one page of a polled API: authenticate, retry transient failures, honour Retry-After.

Outcomes are translated once, here, with the http sink's classification: a 2xx is a page;
408, 425, 429, 5xx (except 501/505), timeouts and connection errors are retried with
exponential backoff and full jitter (``RetryPolicy``), a ``Retry-After`` being the floor of the
wait; after ``attempts`` the last ``TransientError`` is raised. Everything else raises a
``PermanentError`` at once. OAuth2 credentials are renewed once after a 401.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import structlog

from dovetail.connectors.http.auth import Authenticator, build_authenticator
from dovetail.connectors.http.classify import (
    StatusPolicy,
    classify_exception,
    classify_response,
    describe_request,
)
from dovetail.connectors.poll.config import PollConfig
from dovetail.connectors.poll.pagination import PageRequest
from dovetail.delivery.clock import Clock
from dovetail.delivery.retry import RetryPolicy
from dovetail.errors import MessageError, PermanentError, TransientError

log = structlog.get_logger(__name__)

MAX_RETRY_AFTER = 3600.0
"""The longest ``Retry-After`` obeyed; a partner asking for more is waited on this long."""


class PageFetcher:
    """Sends the GET requests of a poller over one connection pool."""

    def __init__(self, config: PollConfig, clock: Clock, *, flow: str) -> None:
        self.config = config
        self._clock = clock
        self._flow = flow
        self._auth: Authenticator = build_authenticator(config.auth)
        retry = config.retry
        self._policy = RetryPolicy(attempts=retry.attempts, initial=retry.initial, max=retry.max)
        self._client: httpx.AsyncClient | None = None
        self.retries = 0
        """Requests sent again after a transient failure (for tests and logs)."""

    @property
    def authenticator(self) -> Authenticator:
        """How requests are authenticated (OAuth2 exposes ``tokens_fetched``)."""
        return self._auth

    async def open(self) -> None:
        """Open the HTTP client."""
        if self._client is None:
            self._client = self._auth.make_client(
                timeout=httpx.Timeout(self.config.timeout),
                follow_redirects=False,
                headers={"user-agent": "dovetail", "accept": "application/json"}
                | self.config.headers,
            )

    async def close(self) -> None:
        """Close the client and its connections."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def fetch(self, request: PageRequest) -> httpx.Response:
        """The response to ``request`` once it succeeded; raises ``MessageError`` otherwise."""
        if self._client is None:
            await self.open()
        attempt = 0
        while True:
            attempt += 1
            failure = await self._attempt(request)
            if isinstance(failure, httpx.Response):
                return failure
            if isinstance(failure, PermanentError) or self._policy.gives_up(attempt):
                raise failure
            retry_after = getattr(failure, "retry_after", None)
            wait = self._policy.backoff(attempt)
            if retry_after is not None:
                wait = max(wait, min(retry_after, MAX_RETRY_AFTER))
            log.warning(
                "poll request failed; retrying",
                flow=self._flow,
                reason=failure.reason,
                attempt=attempt,
                wait=round(wait, 3),
            )
            self.retries += 1
            await self._clock.sleep(wait)

    async def _attempt(self, request: PageRequest) -> httpx.Response | MessageError:
        assert self._client is not None
        try:
            auth = await self._auth.headers(self._client)
            response = await self._send(request, auth)
            if response.status_code == 401 and await self._auth.renew(self._client, auth):
                auth = await self._auth.headers(self._client)
                response = await self._send(request, auth)
        except MessageError as exc:
            return exc
        except httpx.HTTPError as exc:
            return classify_exception(exc, "GET", request.url)
        failure = classify_response(response, StatusPolicy())
        return response if failure is None else failure

    async def _send(self, request: PageRequest, headers: dict[str, str]) -> httpx.Response:
        assert self._client is not None
        with anyio.move_on_after(self.config.timeout) as deadline:
            return await self._client.request(
                "GET",
                request.url,
                params=request.params or None,
                headers=headers,
                **_withhold_token(self._client),
            )
        assert deadline.cancelled_caught
        where = describe_request("GET", request.url)
        raise TransientError(f"timeout after {self.config.timeout:g}s on {where}")


def _withhold_token(client: httpx.AsyncClient) -> dict[str, Any]:
    # authlib's client would otherwise attach (and maybe re-fetch) its token itself; the
    # authenticator has already put the current one into the headers.
    return {"withhold_token": True} if hasattr(client, "fetch_token") else {}
