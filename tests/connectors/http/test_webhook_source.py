"""The http (webhook) source over real HTTP with the SQLite store: accept, reject, emit, commit."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest

from dovetail.connectors.http.signature import sign
from dovetail.connectors.http.source import WebhookSource
from dovetail.core.envelope import Envelope
from dovetail.errors import StoreError
from dovetail.store.base import Store
from dovetail.store.postgres import PostgresStore
from dovetail.store.sqlite import SqliteStore
from dovetail.testing.components import build_component

SECRET = "whsec-test"
FLOW = "shop-orders"
SIGNED = "http: {path: /hooks/orders, signature: {secret: whsec-test}}"


class FlakyStore(SqliteStore):
    """The real SQLite store, except that the next ``failures`` inbox writes fail."""

    failures = 0

    async def inbox_put(self, flow: str, payload: bytes, headers: dict[str, str], ref: str) -> int:
        if self.failures:
            self.failures -= 1
            raise StoreError("disk full")
        return await super().inbox_put(flow, payload, headers, ref)


def signed_headers(body: bytes, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {"x-timestamp": stamp, "x-signature": sign(SECRET.encode(), stamp, body)}


class Receiver:
    """A running webhook source, its store, and what it emitted."""

    def __init__(self, source: WebhookSource, store: Store) -> None:
        self.source = source
        self.store = store
        self.emitted: list[Envelope] = []
        self._emitted_more = anyio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.source.port}{self.source.config.path}"

    async def emit(self, batch: list[Envelope]) -> None:
        self.emitted.extend(batch)
        self._emitted_more.set()
        self._emitted_more = anyio.Event()

    async def wait_for(self, count: int) -> None:
        """Wait (at most 5 s) until ``count`` messages were emitted."""
        with anyio.fail_after(5):
            while len(self.emitted) < count:
                await self._emitted_more.wait()

    async def post(self, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        async with httpx.AsyncClient() as client:
            return await client.post(self.url, content=body, headers=headers or {})

    async def pending(self) -> list[Any]:
        return await self.store.inbox_pending(FLOW, 100)


@asynccontextmanager
async def receiving(
    tmp_path: Path, snippet: str = SIGNED, store: Store | None = None
) -> AsyncIterator[Receiver]:
    own_store = store is None
    store = store or SqliteStore(tmp_path / ".dovetail" / "state.db")
    if own_store:
        await store.open()
    source = build_component("source", snippet, tmp_path, store=store, flow=FLOW, once=False)
    assert isinstance(source, WebhookSource)
    receiver = Receiver(source, store)
    await source.open()
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(source.run, receiver.emit)
            yield receiver
            group.cancel_scope.cancel()
    finally:
        await source.close()
        if own_store:
            await store.close()


def test_valid_request_is_in_the_inbox_when_202_is_answered(tmp_path: Path) -> None:
    body = b'{"order_id": "SO-1", "total": 10}'

    async def main() -> None:
        async with receiving(tmp_path) as receiver:
            response = await receiver.post(body, signed_headers(body))
            assert response.status_code == 202
            answer = response.json()
            assert answer["status"] == "accepted"
            (row,) = await receiver.pending()
            assert row.id == answer["id"]
            assert row.payload == body
            assert row.headers["x-correlation-id"] == answer["correlation_id"]
            assert row.headers["x-request-id"] == row.ref == answer["request_id"]
            assert "x-signature" not in row.headers

    anyio.run(main)


def test_stored_message_is_emitted_and_deleted_after_ack_and_commit(tmp_path: Path) -> None:
    body = b'{"order_id": "SO-2"}'

    async def main() -> None:
        async with receiving(tmp_path) as receiver:
            trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
            headers = {**signed_headers(body), "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
            answer = (await receiver.post(body, headers)).json()
            assert answer["correlation_id"] == trace_id
            await receiver.wait_for(1)
            (message,) = receiver.emitted
            assert message.payload == {"order_id": "SO-2"}
            assert message.correlation_id == trace_id
            assert message.position is not None
            assert message.position.kind == "webhook"
            assert message.position.ref == f"inbox:{answer['id']}"
            assert message.failure is None

            await receiver.source.commit()
            assert len(await receiver.pending()) == 1, "not acked yet: the row stays"
            await message.settlement.settle()
            await receiver.source.commit()
            assert await receiver.pending() == []

    anyio.run(main)


def test_pending_rows_are_emitted_again_after_a_restart(tmp_path: Path) -> None:
    async def main() -> None:
        store = SqliteStore(tmp_path / "state.db")
        await store.open()
        try:
            async with receiving(tmp_path, store=store) as first:
                for n in (1, 2):
                    body = orjson.dumps({"order_id": f"SO-{n}"})
                    assert (await first.post(body, signed_headers(body))).status_code == 202
                await first.wait_for(2)
                await first.emitted[0].settlement.settle()
                await first.source.commit()
            # the process "died" with SO-2 unsettled; a new source finds it first
            async with receiving(tmp_path, store=store) as second:
                await second.wait_for(1)
                assert second.emitted[0].payload == {"order_id": "SO-2"}
        finally:
            await store.close()

    anyio.run(main)


def test_a_request_after_the_inbox_drained_empty_is_emitted_without_a_restart(
    tmp_path: Path, store_factory: Callable[[], Store]
) -> None:
    async def main() -> None:
        store = store_factory()
        await store.open()
        try:
            async with receiving(tmp_path, store=store) as receiver:
                for round_ in range(3):
                    bodies = [orjson.dumps({"order_id": f"SO-{round_}-{n}"}) for n in range(3)]
                    for body in bodies:
                        assert (await receiver.post(body, signed_headers(body))).status_code == 202
                    await receiver.wait_for(3 * (round_ + 1))
                    for message in receiver.emitted[-3:]:
                        await message.settlement.settle()
                    await receiver.source.commit()
                    assert await receiver.pending() == [], "drained empty before the next round"
                keys = [message.payload["order_id"] for message in receiver.emitted]
                assert keys == [f"SO-{r}-{n}" for r in range(3) for n in range(3)]
        finally:
            await store.close()

    anyio.run(main)


def test_a_row_committed_late_with_a_lower_id_is_still_emitted(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    """Sequence values are taken at insert, rows become visible at commit: a reader that
    remembered the highest id it saw would skip a row whose transaction committed last."""
    import asyncpg

    async def main() -> None:
        store = PostgresStore(fresh_postgres_url)
        await store.open()
        slow_writer = await asyncpg.connect(fresh_postgres_url.replace("postgresql", "postgres"))
        try:
            snippet = "http: {path: /hooks/orders, poll_interval: 100ms}"
            async with receiving(tmp_path, snippet, store=store) as receiver:
                transaction = slow_writer.transaction()
                await transaction.start()
                late_id = await slow_writer.fetchval(
                    "INSERT INTO dovetail_inbox (flow, payload, headers, ref, received_at)"
                    " VALUES ($1, $2, '{}', 'late', 0) RETURNING id",
                    FLOW,
                    b'{"order_id": "late"}',
                )
                answer = await receiver.post(b'{"order_id": "early"}')
                assert answer.json()["id"] > late_id
                await receiver.wait_for(1)
                await transaction.commit()
                await receiver.wait_for(2)
                assert [m.payload["order_id"] for m in receiver.emitted] == ["early", "late"]
        finally:
            await slow_writer.close()
            await store.close()

    anyio.run(main)


def test_once_mode_drains_the_inbox_without_a_server(tmp_path: Path) -> None:
    async def main() -> list[Envelope]:
        store = SqliteStore(tmp_path / "state.db")
        await store.open()
        try:
            for n in range(3):
                await store.inbox_put(
                    FLOW, orjson.dumps({"n": n}), {"x-correlation-id": f"c{n}"}, f"r{n}"
                )
            source = build_component("source", SIGNED, tmp_path, store=store, flow=FLOW, once=True)
            emitted: list[Envelope] = []

            async def emit(batch: list[Envelope]) -> None:
                emitted.extend(batch)

            await source.open()
            with anyio.fail_after(5):
                await source.run(emit)
            assert source.port is None
            for message in emitted:
                await message.settlement.settle()
            await source.commit()
            assert await store.inbox_pending(FLOW, 10) == []
            await source.close()
            return emitted
        finally:
            await store.close()

    emitted = anyio.run(main)
    assert [(m.payload, m.correlation_id) for m in emitted] == [
        ({"n": 0}, "c0"),
        ({"n": 1}, "c1"),
        ({"n": 2}, "c2"),
    ]


@pytest.mark.parametrize(
    ("make_headers", "status", "detail"),
    [
        (lambda body: {}, 401, "missing signature"),
        (lambda body: {"x-signature": sign(SECRET.encode(), "1", body)}, 401, "missing timestamp"),
        (
            lambda body: {**signed_headers(body), "x-signature": "sha256=00"},
            401,
            "invalid signature",
        ),
        (lambda body: signed_headers(b"other" + body), 401, "invalid signature"),
        (lambda body: signed_headers(body, int(time.time()) - 600), 401, "stale timestamp"),
    ],
)
def test_unauthenticated_requests_are_rejected_and_not_stored(
    tmp_path: Path,
    make_headers: Callable[[bytes], dict[str, str]],
    status: int,
    detail: str,
) -> None:
    body = b'{"order_id": "SO-1"}'

    async def main() -> None:
        async with receiving(tmp_path) as receiver:
            response = await receiver.post(body, make_headers(body))
            assert response.status_code == status
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["detail"] == detail
            assert await receiver.pending() == []

    anyio.run(main)


def test_a_replayed_request_is_409(tmp_path: Path) -> None:
    body = b'{"order_id": "SO-1"}'

    async def main() -> None:
        async with receiving(tmp_path) as receiver:
            headers = signed_headers(body)
            assert (await receiver.post(body, headers)).status_code == 202
            replay = await receiver.post(body, headers)
            assert replay.status_code == 409
            assert len(await receiver.pending()) == 1

    anyio.run(main)


def test_store_failure_answers_503_and_the_retry_is_accepted(tmp_path: Path) -> None:
    body = b'{"order_id": "SO-1"}'

    async def main() -> None:
        store = FlakyStore(tmp_path / "state.db")
        await store.open()
        try:
            async with receiving(tmp_path, store=store) as receiver:
                store.failures = 1
                headers = signed_headers(body)
                failed = await receiver.post(body, headers)
                assert failed.status_code == 503
                assert failed.headers["retry-after"] == "1"
                assert await receiver.pending() == []
                assert (await receiver.post(body, headers)).status_code == 202
                assert len(await receiver.pending()) == 1
        finally:
            await store.close()

    anyio.run(main)


@pytest.mark.parametrize(
    ("snippet", "body", "status", "detail"),
    [
        ("http: {max_body_bytes: 100}", b'{"pad": "' + b"x" * 200 + b'"}', 413, "larger than 100"),
        ("http: {}", b'{"order_id": ', 400, "invalid JSON"),
        ("http: {}", b"[" * 65 + b"]" * 65, 400, "deeper than 64"),
        ("http: {format: xml}", b"<order><id>1</order>", 400, "invalid XML"),
        ("http: {format: xml, max_depth: 3}", b"<a><b><c><d/></c></b></a>", 400, "deeper than 3"),
        ("http: {format: text}", b"\xff\xfe", 400, "not valid UTF-8"),
    ],
)
def test_malformed_bodies_get_a_problem_response_and_are_not_stored(
    tmp_path: Path, snippet: str, body: bytes, status: int, detail: str
) -> None:
    async def main() -> None:
        async with receiving(tmp_path, snippet) as receiver:
            response = await receiver.post(body)
            assert response.status_code == status
            assert response.headers["content-type"] == "application/problem+json"
            problem = response.json()
            assert set(problem) == {"type", "title", "status", "detail"}
            assert problem["status"] == status
            assert detail in problem["detail"]
            assert await receiver.pending() == []

    anyio.run(main)


def test_nesting_at_the_limit_is_accepted(tmp_path: Path) -> None:
    async def main() -> None:
        async with receiving(tmp_path, "http: {}") as receiver:
            response = await receiver.post(b"[" * 64 + b"]" * 64)
            assert response.status_code == 202

    anyio.run(main)


def test_xml_and_text_bodies_are_emitted_as_text(tmp_path: Path) -> None:
    async def main() -> None:
        async with receiving(tmp_path, "http: {format: xml, path: /in}") as receiver:
            body = b"<order><id>7</id></order>"
            assert (await receiver.post(body)).status_code == 202
            await receiver.wait_for(1)
            assert receiver.emitted[0].payload == body.decode()

    anyio.run(main)


def test_other_methods_and_paths_are_refused_and_cancelling_stops_listening(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with receiving(tmp_path, "http: {path: /hooks}") as receiver:
            async with httpx.AsyncClient() as client:
                wrong_method = await client.get(receiver.url)
                assert wrong_method.status_code == 405
                assert wrong_method.headers["allow"] == "POST"
                wrong_path = receiver.url.replace("/hooks", "/other")
                not_found = await client.post(wrong_path, content=b"{}")
                assert not_found.status_code == 404
                for refused in (wrong_method, not_found):
                    assert refused.headers["content-type"] == "application/problem+json"
                    assert refused.headers["x-correlation-id"]
            assert await receiver.pending() == []
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.ConnectError):
                await client.post(receiver.url, content=b"{}")

    anyio.run(main)


def test_open_without_a_store_fails_clearly(tmp_path: Path) -> None:
    source = build_component("source", "http: {}", tmp_path, once=False)
    with pytest.raises(StoreError, match="durable inbox"):
        anyio.run(source.open)


def test_path_must_be_absolute(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must start with '/'"):
        build_component("source", "http: {path: hooks}", tmp_path)


class SlowStore(SqliteStore):
    """The real SQLite store, with inbox writes that take ``delay`` seconds."""

    delay = 0.0

    async def inbox_put(self, flow: str, payload: bytes, headers: dict[str, str], ref: str) -> int:
        await anyio.sleep(self.delay)
        return await super().inbox_put(flow, payload, headers, ref)


def test_stopping_lets_a_request_under_way_finish_and_be_stored(tmp_path: Path) -> None:
    body = b'{"order_id": "SO-late"}'

    async def main() -> tuple[int, int]:
        store = SlowStore(tmp_path / "state.db")
        await store.open()
        try:
            answer: list[httpx.Response] = []
            async with (
                anyio.create_task_group() as clients,
                receiving(tmp_path, store=store) as receiver,
            ):
                store.delay = 0.5

                async def post() -> None:
                    answer.append(await receiver.post(body, signed_headers(body)))

                clients.start_soon(post)
                await anyio.sleep(0.2)  # the request is being stored when the flow stops
            return answer[0].status_code, len(await store.inbox_pending(FLOW, 10))
        finally:
            await store.close()

    assert anyio.run(main) == (202, 1)
