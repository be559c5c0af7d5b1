"""The poll source against a real REST API on 127.0.0.1: pagination, watermark, retries, auth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from orders_api import CLIENT_ID, CLIENT_SECRET, OrdersApi
from pydantic import ValidationError

from dovetail.api import run_flow_async
from dovetail.config.loader import load_flow
from dovetail.connectors.poll.config import PollConfig
from dovetail.connectors.poll.source import CHECKPOINT_KEY, SPEC, PollSource
from dovetail.core.component import BuildContext
from dovetail.core.envelope import Envelope
from dovetail.delivery.clock import FakeClock
from dovetail.errors import PermanentError, TransientError
from dovetail.store.sqlite import SqliteStore
from dovetail.testing.components import build_component
from dovetail.testing.fakes import CaptureSink

FLOW = "orders-poll"

PAGINATION = {
    "cursor": "{cursor: {path: meta.next_cursor, param: cursor}}",
    "offset": "{offset: {limit: 3}}",
    "page": "{page: {param: page}}",
    "link": "link",
}


def snippet(api: OrdersApi, style: str, extra: str = "") -> str:
    pagination = f"\n  pagination: {PAGINATION[style]}" if style in PAGINATION else ""
    return f"poll:\n  url: {api.url}/{style}/orders\n  interval: 1m\n  items: data{pagination}" + (
        f"\n  {extra}" if extra else ""
    )


def make_source(
    tmp_path: Path,
    text: str,
    store: SqliteStore | None = None,
    *,
    once: bool = True,
    clock: FakeClock | None = None,
) -> PollSource:
    """Build through the registry, then again with the given clock (no real waiting)."""
    built = build_component("source", text, tmp_path, store=store, flow=FLOW, once=once)
    assert isinstance(built, PollSource)
    context = BuildContext(
        flow=FLOW, flow_version="1.0.0", project_dir=tmp_path, store=store, once=once
    )
    return PollSource(built.config, context, clock=clock or FakeClock())


class Collector:
    """An ``emit`` that keeps every envelope; settling is up to the test."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.batches = 0

    async def emit(self, batch: list[Envelope]) -> None:
        self.batches += 1
        self.envelopes.extend(batch)

    @property
    def ids(self) -> list[int]:
        return [e.payload["id"] for e in self.envelopes]

    async def settle(self, indexes: list[int] | None = None) -> None:
        chosen = range(len(self.envelopes)) if indexes is None else indexes
        for index in chosen:
            await self.envelopes[index].settlement.settle()


@asynccontextmanager
async def opened_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / ".dovetail" / "state.db")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def poll_once(source: PollSource) -> Collector:
    collector = Collector()
    await source.open()
    try:
        with anyio.fail_after(10):
            await source.run(collector.emit)
    finally:
        await source.close()
    return collector


@pytest.mark.parametrize("style", ["cursor", "offset", "page", "link"])
def test_every_pagination_style_reads_every_record_once(
    orders_api: OrdersApi, tmp_path: Path, style: str
) -> None:
    source = make_source(tmp_path, snippet(orders_api, style))
    collector = anyio.run(poll_once, source)
    assert collector.ids == list(range(1, 9))
    requests = orders_api.list_requests()
    assert 3 <= len(requests) <= 4  # 8 records, 3 per page (+ an empty last page)
    assert collector.envelopes[3].position is not None
    assert collector.envelopes[3].position.offset == 0  # first record of the second page


def test_cursor_pages_send_back_the_cursor_of_the_previous_response(
    orders_api: OrdersApi, tmp_path: Path
) -> None:
    anyio.run(poll_once, make_source(tmp_path, snippet(orders_api, "cursor")))
    cursors = [seen.params.get("cursor") for seen in orders_api.list_requests()]
    assert cursors == [None, "c3", "c6"]


def test_offset_pages_advance_by_the_records_read(orders_api: OrdersApi, tmp_path: Path) -> None:
    anyio.run(poll_once, make_source(tmp_path, snippet(orders_api, "offset")))
    sent = [(s.params["offset"], s.params["limit"]) for s in orders_api.list_requests()]
    assert sent == [("0", "3"), ("3", "3"), ("6", "3")]


def test_page_numbers_stop_at_a_short_page_when_the_size_is_known(
    orders_api: OrdersApi, tmp_path: Path
) -> None:
    text = snippet(orders_api, "page").replace(
        "{page: {param: page}}", "{page: {param: page, size_param: per_page, size: 4}}"
    )
    orders_api.add(1)  # 9 orders: pages of 4, 4, 1
    collector = anyio.run(poll_once, make_source(tmp_path, text))
    assert collector.ids == list(range(1, 10))
    assert [s.params["page"] for s in orders_api.list_requests()] == ["1", "2", "3"]


def test_link_next_on_another_host_is_refused(orders_api: OrdersApi, tmp_path: Path) -> None:
    orders_api.link_host = "http://evil.example.com"
    source = make_source(tmp_path, snippet(orders_api, "link"))
    with pytest.raises(PermanentError, match="another host"):
        anyio.run(poll_once, source)
    assert len(orders_api.list_requests()) == 1


def test_a_plain_array_body_is_the_list_of_records(orders_api: OrdersApi, tmp_path: Path) -> None:
    text = f"poll:\n  url: {orders_api.url}/plain/orders\n  interval: 1m"
    collector = anyio.run(poll_once, make_source(tmp_path, text))
    assert collector.ids == list(range(1, 9))


WATERMARK = "watermark: {field: updated_at, param: updated_after}"


def test_watermark_advances_only_after_every_record_of_the_poll_is_settled(
    orders_api: OrdersApi, tmp_path: Path
) -> None:
    async def main() -> None:
        async with opened_store(tmp_path) as store:
            source = make_source(tmp_path, snippet(orders_api, "cursor", WATERMARK), store)
            collector = await poll_once(source)
            assert len(collector.envelopes) == 8
            assert await store.get_checkpoint(FLOW, CHECKPOINT_KEY) is None
            # the newest record settles first: records before it are still open
            await collector.settle([7, 0, 1, 2, 3, 4, 5])
            await source.commit()
            assert await store.get_checkpoint(FLOW, CHECKPOINT_KEY) is None
            await collector.settle([6])
            await source.commit()
            saved = await store.get_checkpoint(FLOW, CHECKPOINT_KEY)
            assert saved == {"watermark": orders_api.orders[-1]["updated_at"]}

    anyio.run(main)


def test_records_never_settled_are_read_again_on_the_next_start(
    orders_api: OrdersApi, tmp_path: Path
) -> None:
    text = snippet(orders_api, "cursor", WATERMARK)

    async def main() -> None:
        async with opened_store(tmp_path) as store:
            source = make_source(tmp_path, text, store)
            first = await poll_once(source)
            await first.settle(list(range(7)))  # the process dies before the last one settles
            await source.commit()
        orders_api.seen.clear()
        async with opened_store(tmp_path) as store:
            second = await poll_once(make_source(tmp_path, text, store))
            assert second.ids == list(range(1, 9))
            assert "updated_after" not in orders_api.list_requests()[0].params

    anyio.run(main)


def test_settled_watermark_is_what_the_next_start_asks_from(
    orders_api: OrdersApi, tmp_path: Path
) -> None:
    text = snippet(orders_api, "cursor", WATERMARK)

    async def main() -> None:
        async with opened_store(tmp_path) as store:
            source = make_source(tmp_path, text, store)
            first = await poll_once(source)
            await first.settle()
            await source.commit()
        newest = orders_api.orders[-1]["updated_at"]
        orders_api.add(2)
        orders_api.seen.clear()
        async with opened_store(tmp_path) as store:
            second = await poll_once(make_source(tmp_path, text, store))
            assert second.ids == [9, 10]
            assert orders_api.list_requests()[0].params["updated_after"] == newest

    anyio.run(main)


def test_ordered_watermark_advances_page_by_page(orders_api: OrdersApi, tmp_path: Path) -> None:
    ordered = "watermark: {field: updated_at, param: updated_after, ordered: true}"

    async def main() -> None:
        async with opened_store(tmp_path) as store:
            source = make_source(tmp_path, snippet(orders_api, "cursor", ordered), store)
            collector = await poll_once(source)
            await collector.settle([0, 1, 2, 4])  # the first page, and one of the second
            await source.commit()
            saved = await store.get_checkpoint(FLOW, CHECKPOINT_KEY)
            assert saved == {"watermark": orders_api.orders[2]["updated_at"]}

    anyio.run(main)


def test_watermark_needs_a_store(orders_api: OrdersApi, tmp_path: Path) -> None:
    source = make_source(tmp_path, snippet(orders_api, "cursor", WATERMARK))
    with pytest.raises(Exception, match="state store"):
        anyio.run(source.open)


def test_429_retry_after_is_waited_for_and_the_poll_goes_on(
    orders_api: OrdersApi, tmp_path: Path
) -> None:
    orders_api.script = [(429, {"retry-after": "7"}), (503, {"retry-after": "3"})]
    clock = FakeClock()
    source = make_source(tmp_path, snippet(orders_api, "cursor"), clock=clock)
    collector = anyio.run(poll_once, source)
    assert collector.ids == list(range(1, 9))
    assert source.fetcher.retries == 2
    assert len(clock.sleeps) == 2
    assert clock.sleeps[0] >= 7.0
    assert clock.sleeps[1] >= 3.0
    statuses = [s.status for s in orders_api.list_requests()]
    assert statuses[:3] == [429, 503, 200]


def test_transient_errors_are_retried_with_backoff(orders_api: OrdersApi, tmp_path: Path) -> None:
    orders_api.script = [(500, {}), (502, {})]
    clock = FakeClock()
    text = snippet(orders_api, "offset", "retry: {attempts: 3, initial: 2s, max: 10s}")
    source = make_source(tmp_path, text, clock=clock)
    collector = anyio.run(poll_once, source)
    assert collector.ids == list(range(1, 9))
    assert len(clock.sleeps) == 2
    assert all(0.0 <= wait <= 4.0 for wait in clock.sleeps)  # full jitter below the bound


def test_once_mode_raises_when_retries_run_out(orders_api: OrdersApi, tmp_path: Path) -> None:
    orders_api.script = [(503, {})] * 3
    text = snippet(orders_api, "offset", "retry: {attempts: 3}")
    with pytest.raises(TransientError, match="HTTP 503"):
        anyio.run(poll_once, make_source(tmp_path, text))


def test_permanent_error_is_not_retried_in_once_mode(orders_api: OrdersApi, tmp_path: Path) -> None:
    orders_api.script = [(404, {})]
    with pytest.raises(PermanentError, match="HTTP 404"):
        anyio.run(poll_once, make_source(tmp_path, snippet(orders_api, "offset")))
    assert len(orders_api.list_requests()) == 1


def test_failed_poll_is_logged_and_polled_again_at_the_next_tick(
    orders_api: OrdersApi, tmp_path: Path
) -> None:
    orders_api.script = [(400, {})]  # permanent: no retry within the poll
    clock = FakeClock()
    source = make_source(tmp_path, snippet(orders_api, "offset"), once=False, clock=clock)
    collector = Collector()
    all_read = anyio.Event()

    async def emit(batch: list[Envelope]) -> None:
        await collector.emit(batch)
        if len(collector.envelopes) >= 8:
            all_read.set()

    async def main() -> None:
        await source.open()
        try:
            with anyio.fail_after(10):
                async with anyio.create_task_group() as group:
                    group.start_soon(source.run, emit)
                    await all_read.wait()
                    group.cancel_scope.cancel()
        finally:
            await source.close()

    anyio.run(main)
    assert collector.ids == list(range(1, 9))
    assert clock.sleeps and clock.sleeps[0] == pytest.approx(60.0)  # waited for the next tick
    assert [s.status for s in orders_api.list_requests()][:2] == [400, 200]


def test_oauth2_token_is_fetched_reused_and_renewed_after_401(
    oauth_orders_api: OrdersApi, tmp_path: Path
) -> None:
    auth = (
        f"auth: {{oauth2_client_credentials: {{token_url: {oauth_orders_api.url}/oauth/token,"
        f" client_id: {CLIENT_ID}, client_secret: {CLIENT_SECRET}}}}}"
    )
    text = snippet(oauth_orders_api, "cursor", auth)
    source = make_source(tmp_path, text)

    async def main() -> tuple[Collector, Collector]:
        await source.open()
        try:
            first = Collector()
            await source.poll(first.emit)
            oauth_orders_api.tokens.clear()  # the server forgets every token it issued
            second = Collector()
            await source.poll(second.emit)
            return first, second
        finally:
            await source.close()

    first, second = anyio.run(main)
    assert first.ids == second.ids == [1, 2, 3, 4]
    assert oauth_orders_api.tokens_issued == 2
    statuses = [s.status for s in oauth_orders_api.list_requests()]
    assert statuses == [200, 200, 401, 200, 200]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"url": "http://x.example/o"}, "exactly one of `interval` or `cron`"),
        ({"url": "http://x.example/o", "interval": "1m", "cron": "* * * * *"}, "exactly one"),
        ({"url": "ftp://x.example/o", "interval": "1m"}, "http:// or https://"),
        ({"url": "http://x/o", "interval": "1m", "pagination": {}}, "exactly one of cursor"),
        ({"url": "http://x/o", "cron": "61 * * * *"}, "invalid cron"),
        ({"url": "http://x/o", "interval": "1m", "items": "data["}, "JSONata"),
    ],
)
def test_config_errors_explain_themselves(raw: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        PollConfig.model_validate(raw)


@pytest.mark.parametrize("example", SPEC.examples)
def test_spec_examples_build(example: str, tmp_path: Path) -> None:
    assert isinstance(build_component("source", example, tmp_path), PollSource)


def test_every_config_field_is_documented() -> None:
    schema = PollConfig.model_json_schema()
    for name, field in schema["properties"].items():
        assert field.get("description"), f"poll.{name} has no description"


def test_flow_run_delivers_polled_records_and_the_next_run_only_new_ones(
    orders_api: OrdersApi, project: Path
) -> None:
    flow_file = project / "flows" / f"{FLOW}.yaml"
    flow_file.write_text(
        f"flow: {FLOW}\nversion: 1.0.0\nsource:\n  poll:\n    url: {orders_api.url}/link/orders\n"
        "    interval: 1m\n    items: data\n    pagination: link\n"
        "    watermark: {field: updated_at, param: updated_after}\n"
        "steps:\n  - map: {jsonata: '{\"order\": id}'}\n"
        "sink:\n  file: {path: out/orders.jsonl, format: jsonl}\n"
        "delivery: {idempotency_key: id}\n"
    )
    flow = load_flow(flow_file)

    async def run() -> list[Any]:
        sink = CaptureSink("file")
        async with opened_store(project) as store:
            summary = await run_flow_async(
                flow, store=store, once=True, sinks=dict.fromkeys(flow.sinks, sink)
            )
            assert summary.received == len(sink.received)
        return sink.received

    assert anyio.run(run) == [{"order": n} for n in range(1, 9)]
    orders_api.add(2)
    assert anyio.run(run) == [{"order": 9}, {"order": 10}]
    assert anyio.run(run) == []
