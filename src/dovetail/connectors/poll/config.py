"""Configuration of the ``poll`` source: request, schedule, pagination, watermark, retries."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import Field, field_validator, model_validator

from dovetail.config.fields import JsonataExpr, holds_reference
from dovetail.config.types import Duration
from dovetail.connectors.http.auth import AuthConfig
from dovetail.plugins.spec import ComponentConfig


class CursorPagination(ComponentConfig):
    path: JsonataExpr
    """JSONata path to the next page's cursor in the response body (`meta.next_cursor`);
    no value (or the cursor just used) ends the poll."""
    param: str = "cursor"
    """Query parameter that sends the cursor back."""


class OffsetPagination(ComponentConfig):
    offset_param: str = "offset"
    """Query parameter carrying the offset of the first record of a page."""
    limit_param: str = "limit"
    """Query parameter carrying the page size."""
    limit: int = Field(default=100, ge=1, le=100_000)
    """Records asked for per page; a shorter page is the last one."""
    start: int = Field(default=0, ge=0)
    """Offset of the first page."""


class PagePagination(ComponentConfig):
    param: str = "page"
    """Query parameter carrying the page number."""
    start: int = Field(default=1, ge=0)
    """Number of the first page."""
    size_param: str | None = None
    """Query parameter carrying the page size (`per_page`), if the API takes one."""
    size: int | None = Field(default=None, ge=1, le=100_000)
    """Records per page; when set, a shorter page is the last one (otherwise an empty one)."""


class LinkPagination(ComponentConfig):
    rel: str = "next"
    """Link relation of the next page in the RFC 8288 `Link` response header."""


class PaginationConfig(ComponentConfig):
    """Exactly one pagination style (`pagination: link` is short for `{link: {}}`)."""

    cursor: CursorPagination | None = None
    """The response names a cursor for the next page."""
    offset: OffsetPagination | None = None
    """Offset and limit query parameters."""
    page: PagePagination | None = None
    """A page number query parameter."""
    link: LinkPagination | None = None
    """Follow the `Link: <...>; rel="next"` response header."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str) and value in ("offset", "page", "link"):
            return {value: {}}
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> PaginationConfig:
        chosen = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(chosen) != 1:
            names = ", ".join(type(self).model_fields)
            found = ", ".join(chosen) or "none"
            raise ValueError(f"pagination needs exactly one of {names}; found {found}")
        return self


class WatermarkConfig(ComponentConfig):
    field: JsonataExpr
    """The record field whose highest value marks progress (`updated_at`, `id`)."""
    param: str
    """Query parameter that sends the last settled watermark (`updated_since`)."""
    initial: str | int | None = None
    """Value sent on the very first poll; without it the first poll sends no parameter."""
    ordered: bool = False
    """The API returns records in ascending watermark order: the watermark may then advance
    after each settled page instead of only after a whole poll."""


class PollRetryConfig(ComponentConfig):
    attempts: int = Field(default=5, ge=1, le=100)
    """Attempts per page request, the first included, before the poll is given up."""
    initial: Duration = 1.0
    """Upper bound of the first backoff (full jitter)."""
    max: Duration = 60.0
    """The backoff bound never grows beyond this (a `Retry-After` may ask for longer)."""


class PollConfig(ComponentConfig):
    url: str
    """The URL to poll (GET); its own query string is kept."""
    params: dict[str, str] = Field(default_factory=dict)
    """Extra query parameters sent with every request."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra request headers."""
    auth: AuthConfig | None = None
    """Authentication: exactly one of `basic`, `bearer`, `api_key`, `oauth2_client_credentials`."""
    interval: Duration | None = None
    """Time between the starts of two polls (`30s`, `5m`). Give this or `cron`."""
    cron: str | None = None
    """Cron expression for the polls (five fields, or six with seconds last)."""
    timezone: str = "UTC"
    """IANA timezone the cron expression is read in."""
    items: JsonataExpr | None = None
    """JSONata path to the array of records in the response body (`data.orders`); without it
    the body itself is the array (an object body is one record)."""
    pagination: PaginationConfig | None = None
    """How to get the next page: `cursor`, `offset`, `page` or `link`; none: one page."""
    watermark: WatermarkConfig | None = None
    """Incremental polling: remember the highest value of a record field and send it."""
    max_pages: int = Field(default=1000, ge=1)
    """Most pages read in one poll (a guard against pagination that never ends)."""
    timeout: Duration = 30.0
    """Time allowed for each request."""
    retry: PollRetryConfig = PollRetryConfig()
    """Retries of a page request after a transient failure (timeout, connection error, 429,
    5xx); `Retry-After` is honoured."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if holds_reference(value):
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL with a host, found {value!r}")
        return value

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                croniter(value)
            except (ValueError, KeyError) as exc:
                raise ValueError(f"invalid cron expression {value!r}: {exc}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (expected e.g. UTC)") from None
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> PollConfig:
        if (self.interval is None) == (self.cron is None):
            raise ValueError("poll needs exactly one of `interval` or `cron`")
        if self.interval is not None and self.interval <= 0:
            raise ValueError("interval must be longer than 0")
        return self
