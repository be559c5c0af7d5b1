"""Outbound authentication for the HTTP sink: basic, bearer, API key, OAuth2 client credentials.

An ``Authenticator`` builds the sink's shared ``httpx.AsyncClient`` and supplies the auth
headers of each request. OAuth2 uses authlib's ``AsyncOAuth2Client`` to fetch tokens with the
client-credentials grant: the first request fetches one, later requests reuse it until it is
about to expire, and after a 401 the sink asks for a new one once (``renew``) and retries.

Secrets are ``SecretStr`` in the config and never enter reasons, exceptions or logs.
"""

from __future__ import annotations

import base64
import time
import warnings
from collections.abc import Callable
from typing import Any, Protocol

import anyio
import httpx
from pydantic import SecretStr, model_validator

from dovetail.config.fields import holds_reference
from dovetail.config.secrets import refresh_value
from dovetail.connectors.http.classify import StatusPolicy, classify_exception, classify_response
from dovetail.errors import MessageError, PermanentError, TransientError
from dovetail.observability.redaction import register_credential
from dovetail.plugins.spec import ComponentConfig


class BasicAuthConfig(ComponentConfig):
    username: str
    """User name sent with HTTP Basic authentication."""
    password: SecretStr
    """Password; use `${secret:NAME}`."""


class BearerAuthConfig(ComponentConfig):
    token: SecretStr
    """A static bearer token sent as `Authorization: Bearer <token>`; use `${secret:NAME}`."""


class ApiKeyAuthConfig(ComponentConfig):
    header: str = "X-API-Key"
    """The request header that carries the key."""
    value: SecretStr
    """The API key; use `${secret:NAME}`."""


class OAuth2ClientCredentialsConfig(ComponentConfig):
    token_url: str
    """The token endpoint of the authorization server."""
    client_id: str
    """The client id registered with the authorization server."""
    client_secret: SecretStr
    """The client secret; use `${secret:NAME}`."""
    scope: str | list[str] | None = None
    """Scopes to request (space-separated string or list)."""
    audience: str | None = None
    """The `audience` parameter some servers (Auth0, Okta) require."""


class AuthConfig(ComponentConfig):
    """Exactly one authentication method."""

    basic: BasicAuthConfig | None = None
    """HTTP Basic authentication."""
    bearer: BearerAuthConfig | None = None
    """A static bearer token."""
    api_key: ApiKeyAuthConfig | None = None
    """An API key in a request header."""
    oauth2_client_credentials: OAuth2ClientCredentialsConfig | None = None
    """OAuth2 client-credentials grant; tokens are fetched, reused and renewed automatically."""

    @model_validator(mode="after")
    def _exactly_one(self) -> AuthConfig:
        chosen = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(chosen) != 1:
            names = ", ".join(type(self).model_fields)
            found = ", ".join(chosen) or "none"
            raise ValueError(f"auth needs exactly one of {names}; found {found}")
        return self


class Authenticator(Protocol):
    """Supplies a sink's HTTP client and the auth headers of its requests."""

    def make_client(self, **client_options: Any) -> httpx.AsyncClient:
        """Build the shared client (called from the sink's ``open()``)."""
        ...

    async def headers(self, client: httpx.AsyncClient) -> dict[str, str]:
        """Auth headers for the next request; may fetch a token (raises ``MessageError``)."""
        ...

    async def renew(self, client: httpx.AsyncClient, sent: dict[str, str]) -> bool:
        """After a 401 to a request sent with ``sent`` headers: renew the credentials.

        Returns True when a retry with fresh ``headers()`` may succeed.
        """
        ...


class StaticAuthenticator:
    """Fixed headers: none, Basic, Bearer or an API key.

    With ``credentials`` (the resolved values the headers are built from) and ``build``, a 401
    reads each credential's secret again from where it was found (environment, secret file,
    Vault: ``refresh_value``); when one was rotated, the headers are rebuilt and the request is
    retried once.
    """

    def __init__(
        self,
        headers: dict[str, str],
        credentials: tuple[str, ...] = (),
        build: Callable[[tuple[str, ...]], dict[str, str]] | None = None,
    ) -> None:
        self._headers = headers
        self._credentials = credentials
        self._build = build
        self._lock = anyio.Lock()
        self.refreshed = 0

    def make_client(self, **client_options: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(**client_options)

    async def headers(self, client: httpx.AsyncClient) -> dict[str, str]:
        return dict(self._headers)

    async def renew(self, client: httpx.AsyncClient, sent: dict[str, str]) -> bool:
        if self._build is None or not self._credentials:
            return False
        async with self._lock:
            if sent != self._headers:  # another request already picked up new credentials
                return True
            fresh = tuple(refresh_value(value) or value for value in self._credentials)
            if fresh == self._credentials:
                return False
            self._credentials = fresh
            self._headers = self._build(fresh)
            self.refreshed += 1
            return True


class OAuth2ClientCredentials:
    """Client-credentials tokens through authlib, shared by every request of one sink.

    One token is fetched at a time (a lock); a token with less than a tenth of its lifetime
    (at most 30 s) left is renewed before use. ``renew`` after a 401 fetches a new token only
    if the rejected one is still the current one, so concurrent 401s cause a single fetch.
    """

    def __init__(self, config: OAuth2ClientCredentialsConfig) -> None:
        self._config = config
        self._lock = anyio.Lock()
        self._oauth_error: type[Exception] = Exception
        self.tokens_fetched = 0

    def make_client(self, **client_options: Any) -> httpx.AsyncClient:
        oauth_client_class, self._oauth_error = _import_authlib()
        scope = self._config.scope
        client: httpx.AsyncClient = oauth_client_class(
            client_id=self._config.client_id,
            client_secret=self._config.client_secret.get_secret_value(),
            scope=" ".join(scope) if isinstance(scope, list) else scope,
            token_endpoint=self._config.token_url,
            grant_type="client_credentials",
            leeway=0,
            **client_options,
        )
        return client

    async def headers(self, client: httpx.AsyncClient) -> dict[str, str]:
        token = _current_token(client)
        if token is None or _expiring(token):
            async with self._lock:
                token = _current_token(client)
                if token is None or _expiring(token):
                    token = await self._fetch(client)
        return {"authorization": f"Bearer {token['access_token']}"}

    async def renew(self, client: httpx.AsyncClient, sent: dict[str, str]) -> bool:
        async with self._lock:
            token = _current_token(client)
            if token is None or sent.get("authorization") == f"Bearer {token['access_token']}":
                await self._fetch(client)
        return True

    async def _fetch(self, client: httpx.AsyncClient) -> dict[str, Any]:
        extra: dict[str, str] = {}
        if self._config.audience:
            extra["audience"] = self._config.audience
        fetch_token = client.fetch_token  # type: ignore[attr-defined]
        try:
            token: dict[str, Any] = await fetch_token(
                self._config.token_url, grant_type="client_credentials", **extra
            )
        except httpx.HTTPError as exc:
            raise _token_failure(exc, self._config.token_url) from None
        except (self._oauth_error, ValueError) as exc:  # an error answer, or not a JSON object
            error = getattr(exc, "error", None) or type(exc).__name__
            where = _path(self._config.token_url)
            raise PermanentError(f"token request to {where} was rejected: {error}") from None
        if not token.get("access_token"):
            raise PermanentError("token response has no access_token")
        self.tokens_fetched += 1
        return token


def build_authenticator(config: AuthConfig | None) -> Authenticator:
    """The authenticator for a sink's ``auth`` block (none when it is absent)."""
    if config is None:
        return StaticAuthenticator({})
    if config.basic is not None:
        username = config.basic.username

        def basic(values: tuple[str, ...]) -> dict[str, str]:
            if not holds_reference(values[0]):  # an echoed header is redacted whole
                register_credential(username, values[0])
            encoded = base64.b64encode(f"{username}:{values[0]}".encode()).decode("ascii")
            return {"authorization": f"Basic {encoded}"}

        password = (config.basic.password.get_secret_value(),)
        return StaticAuthenticator(basic(password), password, basic)
    if config.bearer is not None:

        def bearer(values: tuple[str, ...]) -> dict[str, str]:
            return {"authorization": f"Bearer {values[0]}"}

        token = (config.bearer.token.get_secret_value(),)
        return StaticAuthenticator(bearer(token), token, bearer)
    if config.api_key is not None:
        header = config.api_key.header

        def api_key(values: tuple[str, ...]) -> dict[str, str]:
            return {header: values[0]}

        key = (config.api_key.value.get_secret_value(),)
        return StaticAuthenticator(api_key(key), key, api_key)
    assert config.oauth2_client_credentials is not None
    return OAuth2ClientCredentials(config.oauth2_client_credentials)


def _import_authlib() -> tuple[Any, type[Exception]]:
    # authlib warns that it prefers the httpx2 package; the httpx fallback is what we use.
    import authlib.deprecate  # noqa: F401  (installs authlib's own warning filter first)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from authlib.integrations.base_client import OAuthError
        from authlib.integrations.httpx_client import AsyncOAuth2Client
    return AsyncOAuth2Client, OAuthError


def _current_token(client: httpx.AsyncClient) -> dict[str, Any] | None:
    token = getattr(client, "token", None)
    return token if token else None


def _expiring(token: dict[str, Any]) -> bool:
    expires_at = token.get("expires_at")
    if expires_at is None:
        return False
    lifetime = float(token.get("expires_in") or 0)
    margin = min(30.0, lifetime / 10)
    return float(expires_at) - margin <= time.time()


def _token_failure(exc: httpx.HTTPError, token_url: str) -> MessageError:
    if isinstance(exc, httpx.HTTPStatusError):
        failure = classify_response(exc.response, StatusPolicy())
        status = exc.response.status_code
        reason = f"token request to {_path(token_url)} failed: HTTP {status}"
        if failure is None or isinstance(failure, TransientError):
            return TransientError(reason, retry_after=getattr(failure, "retry_after", None))
        return PermanentError(reason)
    translated = classify_exception(exc, "POST", token_url)
    prefix = "token request failed: "
    if isinstance(translated, TransientError):
        return TransientError(prefix + translated.reason)
    return PermanentError(prefix + translated.reason)


def _path(url: str) -> str:
    return httpx.URL(url).path or "/"
