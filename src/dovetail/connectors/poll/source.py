"""``poll`` source: read a REST API on a schedule, page by page, incrementally by watermark.

Each poll sends GET requests page after page (``pagination.py``) and emits the records of
each page as they arrive (awaiting ``emit`` is the back-pressure). With a ``watermark`` the
highest value of a record field is remembered and sent as a query parameter on the next
poll; the value is persisted in the store checkpoint only after every record up to it is
settled (``watermark.py``), so ``kill -9`` at any moment at worst polls some records again.

Why no durable inbox: a poll is a repeatable read. Until the watermark is persisted, the
records behind it are still offered by the partner and are fetched again on the next start,
which gives at-least-once delivery with one store write per settled batch instead of one per
record; declare an ``idempotency_key`` to make the re-read records harmless.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import orjson
import structlog
from croniter import croniter

from dovetail.connectors.poll.config import PollConfig
from dovetail.connectors.poll.fetch import PageFetcher
from dovetail.connectors.poll.pagination import PageRequest, PageResponse, build_paginator
from dovetail.connectors.poll.watermark import (
    WatermarkTracker,
    WatermarkValue,
    as_param,
    later,
    watermark_of,
)
from dovetail.core.ack import Settlement
from dovetail.core.component import BuildContext, Emit
from dovetail.core.envelope import Envelope, SourcePosition
from dovetail.delivery.clock import Clock, SystemClock
from dovetail.errors import MappingFailed, MessageError, PermanentError, StoreError
from dovetail.mapping.jsonata import Expression, compile_expression
from dovetail.plugins.spec import ComponentSpec
from dovetail.safety.limits import nesting_depth

log = structlog.get_logger(__name__)

CHECKPOINT_KEY = "poll:watermark"
"""The store checkpoint holding ``{"watermark": <value>}`` for a flow's poll source."""

MAX_DEPTH = 64
"""Deepest nesting accepted in a response body."""


class PollSource:
    """Polls a REST endpoint and emits one message per record.

    Ack contract: a record's ack marks it settled in the watermark tracker; ``commit()``
    persists the settled watermark (one checkpoint write, only when it moved). Failures of
    a poll (after retries) are logged and the next tick polls again; in ``once`` mode the
    whole poll runs once and its failure is raised.
    """

    def __init__(
        self, config: PollConfig, context: BuildContext, *, clock: Clock | None = None
    ) -> None:
        self.config = config
        self._flow = context.flow
        self._store = context.store
        self._once = context.once
        self._batch_size = max(1, int(context.options.get("batch_size", 100)))
        self._clock: Clock = clock or SystemClock()
        self._fetcher = PageFetcher(config, self._clock, flow=context.flow)
        self._paginator = build_paginator(config.pagination, config.url)
        self._items: Expression | None = compile_expression(config.items) if config.items else None
        watermark = config.watermark
        self._field = compile_expression(watermark.field) if watermark else None
        self._tracker = WatermarkTracker(None)
        self._committed: WatermarkValue | None = None
        self._commit_lock = anyio.Lock()
        self.polls = 0
        """Polls that read every page (for tests and logs)."""

    @property
    def fetcher(self) -> PageFetcher:
        """The page fetcher (its ``retries`` and authenticator are useful in tests)."""
        return self._fetcher

    @property
    def watermark(self) -> WatermarkValue | None:
        """The settled watermark (what ``commit()`` persists)."""
        return self._tracker.settled

    async def open(self) -> None:
        """Read the persisted watermark and open the HTTP client."""
        watermark = self.config.watermark
        if watermark is not None:
            if self._store is None:
                raise StoreError("the poll source needs a state store for its watermark")
            start: WatermarkValue | None = watermark.initial
            saved = await self._store.get_checkpoint(self._flow, CHECKPOINT_KEY)
            if saved is not None and watermark_of(saved.get("watermark")) is not None:
                start = watermark_of(saved["watermark"])
            self._tracker = WatermarkTracker(start)
            self._committed = start
        await self._fetcher.open()

    async def run(self, emit: Emit) -> None:
        """Poll on the schedule until cancelled (``once``: one complete poll, then return)."""
        if self._once:
            await self.poll(emit)
            return
        if self.config.cron is not None:
            await self._clock.sleep(self._until_cron())
        while True:
            started = self._clock.monotonic()
            try:
                await self.poll(emit)
            except MessageError as exc:
                log.error(
                    "poll failed; polling again at the next tick",
                    flow=self._flow,
                    reason=exc.reason,
                    error_class=type(exc).__name__,
                )
            if self.config.interval is not None:
                delay = started + self.config.interval - self._clock.monotonic()
            else:
                delay = self._until_cron()
            await self._clock.sleep(max(0.0, delay))

    async def commit(self) -> None:
        """Persist the settled watermark when it moved (one checkpoint write)."""
        if self.config.watermark is None:
            return
        async with self._commit_lock:
            value = self._tracker.settled
            if value is None or value == self._committed:
                return
            assert self._store is not None
            await self._store.put_checkpoint(self._flow, CHECKPOINT_KEY, {"watermark": value})
            self._committed = value

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._fetcher.close()

    async def poll(self, emit: Emit) -> None:
        """One poll: every page, each page's records emitted as they arrive.

        Raises ``MessageError`` when a page cannot be read (after retries); the records of
        earlier pages are already emitted and settle normally, but an unordered watermark
        does not advance for an incomplete poll.
        """
        config = self.config
        params = dict(config.params)
        tracker = self._tracker
        if config.watermark is not None and tracker.latest is not None:
            params[config.watermark.param] = as_param(tracker.latest)
        ordered = config.watermark is not None and config.watermark.ordered
        request: PageRequest | None = self._paginator.first(config.url, params)
        highest: WatermarkValue | None = None
        complete = True
        while request is not None:
            response = await self._fetcher.fetch(request)
            body = _parse(response.content, request)
            records = self._records(body)
            page_highest = await self._emit_page(emit, request, records)
            highest = later(highest, page_highest)
            if ordered:
                tracker.close_segment(page_highest)
            page = PageResponse(str(response.url), response.headers.get("link"), body, records)
            following = self._paginator.next(request, page)
            if following is not None and request.number >= config.max_pages:
                log.warning(
                    "poll stopped at max_pages; the rest is read next time",
                    flow=self._flow,
                    max_pages=config.max_pages,
                )
                complete = False
                following = None
            request = following
        if complete and not ordered:
            tracker.close_segment(highest)
        self.polls += 1
        await self.commit()

    def _records(self, body: Any) -> list[Any]:
        value = body if self._items is None else self._items.evaluate(body)
        if value is None:
            return []
        return value if isinstance(value, list) else [value]

    async def _emit_page(
        self, emit: Emit, request: PageRequest, records: list[Any]
    ) -> WatermarkValue | None:
        highest: WatermarkValue | None = None
        batch: list[Envelope] = []
        ref = f"{request.url} page {request.number}"
        for index, record in enumerate(records):
            if self._field is not None:
                # a record without a usable value does not move the watermark
                with contextlib.suppress(MappingFailed):
                    highest = later(highest, watermark_of(self._field.evaluate(record)))
            batch.append(self._envelope(record, ref, index))
            if len(batch) >= self._batch_size:
                await emit(batch)
                batch = []
        if batch:
            await emit(batch)
        return highest

    def _envelope(self, record: Any, ref: str, index: int) -> Envelope:
        seq = self._tracker.issue()
        tracker = self._tracker

        async def ack() -> None:
            tracker.settle(seq)

        return Envelope(
            payload=record,
            settlement=Settlement(ack),
            position=SourcePosition(kind="poll", ref=ref, offset=index),
            original=record,
        )

    def _until_cron(self) -> float:
        assert self.config.cron is not None
        now = datetime.now(ZoneInfo(self.config.timezone))
        due: datetime = croniter(self.config.cron, now).get_next(datetime)
        return max(0.0, (due - now).total_seconds())


def _parse(content: bytes, request: PageRequest) -> Any:
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise PermanentError(f"page {request.number} is not JSON: {exc}") from None
    if nesting_depth(body, MAX_DEPTH) > MAX_DEPTH:
        raise PermanentError(f"page {request.number} is nested deeper than {MAX_DEPTH} levels")
    return body


SPEC = ComponentSpec(
    kind="source",
    name="poll",
    config=PollConfig,
    factory=lambda config, context: PollSource(config, context),
    status="beta",
    summary="Poll a REST API on a schedule: paginated, incremental by watermark.",
    description=(
        "Every `interval` (or at each `cron` tick) the source sends GET requests to `url`,"
        " page after page, and emits one message per record found at the JSONata path"
        " `items`. Pagination styles: `cursor` (a JSONata path to the next cursor, sent"
        " back as a query parameter), `offset` (offset and limit parameters), `page` (a page"
        ' number) and `link` (the RFC 8288 `Link` header\'s `rel="next"`, which must stay on'
        " the configured host).\n\n"
        "With a `watermark`, the highest value of a record field (`updated_at`) is sent as a"
        " query parameter on the next poll. It is persisted in the state store only once"
        " every record up to it is settled (delivered, filtered or dead-lettered), so a crash"
        " at any moment at worst reads some records again: declare an `idempotency_key`."
        " Records need not come in watermark order; with `ordered: true` the watermark also"
        " advances after each settled page.\n\n"
        "Transient failures (timeouts, connection errors, 408, 429, 5xx) are retried with"
        " backoff, honouring `Retry-After`; other errors, or retries running out, are logged"
        " and the next tick polls again. Authentication is the http sink's: basic, bearer,"
        " API key or OAuth2 client credentials (renewed after a 401). With"
        " `dovetail run --once` one complete poll runs and a failure ends the run."
    ),
    examples=[
        "poll:\n  url: https://shop.example.com/api/orders\n  interval: 5m\n  items: data\n"
        "  pagination: {cursor: {path: meta.next_cursor, param: cursor}}\n"
        "  watermark: {field: updated_at, param: updated_since}",
        "poll:\n  url: https://api.example.com/v2/customers\n  cron: '0 * * * *'\n"
        "  pagination: link\n"
        "  auth:\n    oauth2_client_credentials:\n"
        "      token_url: https://login.example.com/oauth/token\n"
        "      client_id: ${secret:CRM_CLIENT_ID}\n"
        "      client_secret: ${secret:CRM_CLIENT_SECRET}",
        "poll:\n  url: https://erp.example.com/stock\n  interval: 1h\n  items: items\n"
        "  pagination: {offset: {limit: 500}}",
    ],
)
