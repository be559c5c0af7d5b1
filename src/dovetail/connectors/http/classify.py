"""Translate HTTP outcomes into Dovetail's failure markers, once, at the connector boundary.

``classify_response`` maps a status code to ``None`` (delivered), a ``TransientError`` (retry
later; ``RateLimitedError`` for 429) or a ``PermanentError`` (dead-letter), following a
``StatusPolicy`` that a sink's config can override code by code. ``classify_exception`` does
the same for httpx's exceptions: every transport failure (timeout, refused connection, reset)
is transient; a request that could not be built (bad URL, unsupported scheme) is permanent.
"""

from __future__ import annotations

import email.utils
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from dovetail.core.attempts import with_cause
from dovetail.errors import MessageError, PermanentError, RateLimitedError, TransientError
from dovetail.observability.redaction import redact

DEFAULT_TRANSIENT: frozenset[int] = frozenset({408, 425, 429, 500, 502, 503, 504})
"""Status codes retried by default; other 5xx are retried too, except 501 and 505."""

NEVER_RETRIED_5XX: frozenset[int] = frozenset({501, 505})
"""Server errors that retrying cannot fix: the target does not support the request."""

BODY_EXCERPT = 200
"""How many characters of a failed response's body go into the failure reason."""

_EXCERPT_WINDOW = 8 * 1024
"""How much of the body is read for the excerpt (secrets are redacted from all of it)."""


@dataclass(frozen=True, slots=True)
class StatusPolicy:
    """Which status codes mean delivered, retry later or dead-letter.

    Precedence: ``success``, then ``already_delivered``, then the ``transient`` and
    ``permanent`` overrides, then the defaults (408, 425, 429 and 5xx other than 501/505 are
    transient; everything else is permanent). ``success=None`` means any 2xx.
    """

    success: frozenset[int] | None = None
    already_delivered: frozenset[int] = frozenset()
    transient: frozenset[int] = frozenset()
    permanent: frozenset[int] = frozenset()

    @classmethod
    def build(
        cls,
        *,
        success: Collection[int] | None = None,
        already_delivered: Collection[int] = (),
        transient: Collection[int] = (),
        permanent: Collection[int] = (),
    ) -> StatusPolicy:
        """A policy from plain collections (as found in a sink's config)."""
        return cls(
            success=frozenset(success) if success is not None else None,
            already_delivered=frozenset(already_delivered),
            transient=frozenset(transient),
            permanent=frozenset(permanent),
        )

    def is_delivered(self, status: int) -> bool:
        """True when ``status`` confirms delivery (success or already delivered)."""
        ok = 200 <= status < 300 if self.success is None else status in self.success
        return ok or status in self.already_delivered

    def is_transient(self, status: int) -> bool:
        """True when a non-delivered ``status`` is worth retrying."""
        if status in self.transient:
            return True
        if status in self.permanent:
            return False
        if status in DEFAULT_TRANSIENT:
            return True
        return 500 <= status < 600 and status not in NEVER_RETRIED_5XX


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP-date.

    Returns ``None`` when the header is absent or unreadable; a date in the past gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def describe_request(method: str, url: httpx.URL | str) -> str:
    """``POST /sales-orders``: method and path only (no host, query or credentials)."""
    path = httpx.URL(url).path if isinstance(url, str) else url.path
    return f"{method.upper()} {path or '/'}"


def classify_response(
    response: httpx.Response, policy: StatusPolicy, *, now: datetime | None = None
) -> MessageError | None:
    """``None`` when ``response`` confirms delivery, else the failure it stands for.

    The reason reads ``HTTP 422 from POST /sales-orders: <first 200 characters of the body>``;
    a transient failure carries ``retry_after`` from the ``Retry-After`` header.
    """
    status = response.status_code
    if policy.is_delivered(status):
        return None
    where = describe_request(response.request.method, response.request.url)
    excerpt = _body_excerpt(response)
    reason = f"HTTP {status} from {where}" + (f": {excerpt}" if excerpt else "")
    if policy.is_transient(status):
        retry_after = parse_retry_after(response.headers.get("retry-after"), now=now)
        cause = f"HTTP {status}"
        if retry_after is not None:
            cause += f", Retry-After {retry_after:g}s"
        if status == 429:
            return with_cause(RateLimitedError(reason, retry_after=retry_after), cause)
        return with_cause(TransientError(reason, retry_after=retry_after), cause)
    return with_cause(PermanentError(reason), f"HTTP {status}")


def classify_exception(exc: httpx.HTTPError, method: str, url: httpx.URL | str) -> MessageError:
    """Translate an httpx exception raised while sending a request into ours.

    Timeouts, refused or reset connections and protocol breaks mid-response are transient
    (the request may or may not have arrived: the idempotency key makes the retry safe).
    An invalid URL or unsupported scheme is permanent. The reason names the exception class
    and the request's method and path, never headers or bodies.
    """
    where = describe_request(method, url)
    kind = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return with_cause(TransientError(f"timeout ({kind}) on {where}"), f"timeout ({kind})")
    if isinstance(exc, httpx.HTTPStatusError):
        return classify_response(exc.response, StatusPolicy()) or TransientError(
            f"{kind} on {where}"
        )
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError | httpx.InvalidURL):
        return PermanentError(f"cannot send {where}: {kind}: {exc}")
    if isinstance(exc, httpx.TransportError):
        return with_cause(
            TransientError(f"connection failed on {where}: {kind}: {exc}"),
            f"connection failed ({kind})",
        )
    return PermanentError(f"{kind} on {where}: {exc}")


def _body_excerpt(response: httpx.Response) -> str:
    try:
        text = response.text
    except (httpx.ResponseNotRead, UnicodeDecodeError, LookupError):
        return ""
    # redacted before it is cut, so a secret across the cut cannot leave a readable prefix
    return " ".join(redact(text[:_EXCERPT_WINDOW]).split())[:BODY_EXCERPT]
