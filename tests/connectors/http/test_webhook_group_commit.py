"""Concurrent webhook requests share inbox commits, and every 202 names a committed row."""

from __future__ import annotations

import itertools
import sqlite3
import threading
from pathlib import Path

import anyio
import httpx
import orjson
import pytest
from tests.connectors.http.test_webhook_source import receiving

from dovetail.store.sqlite import SqliteStore

pytestmark = pytest.mark.usefixtures("http_parser")

UNSIGNED = "http: {path: /hooks/orders}"
SENDERS = 64


def stored_payloads(path: Path) -> dict[int, bytes]:
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute("SELECT id, payload FROM dovetail_inbox").fetchall()
    finally:
        connection.close()
    return {int(row_id): bytes(payload) for row_id, payload in rows}


def test_posts_that_arrive_during_a_commit_share_the_next_one(tmp_path: Path) -> None:
    """While the store's thread is busy (here: held until every request is waiting, as a
    slow disk would), arriving requests queue up; they are then committed together, and
    each 202 names the stored row of its own body."""
    path = tmp_path / "state.db"
    statements: list[str] = []
    posts = SENDERS

    async def main() -> dict[bytes, httpx.Response]:
        store = SqliteStore(path)
        await store.open()
        await store._run(lambda connection: connection.set_trace_callback(statements.append))
        answers: dict[bytes, httpx.Response] = {}
        disk = threading.Event()
        try:
            async with (
                receiving(tmp_path, UNSIGNED, store=store) as receiver,
                httpx.AsyncClient(limits=httpx.Limits(max_connections=SENDERS)) as client,
                anyio.create_task_group() as group,
            ):

                async def send(n: int) -> None:
                    body = orjson.dumps({"order_id": f"SO-{n}"})
                    answers[body] = await client.post(receiver.url, content=body)

                group.start_soon(store._run, lambda _: disk.wait(10))  # a commit under way
                for n in range(posts):
                    group.start_soon(send, n)
                with anyio.fail_after(10):
                    while store.inbox_writer.queued < posts:  # noqa: ASYNC110 (a thread's count)
                        await anyio.sleep(0.01)
                disk.set()
        finally:
            await store.close()
        return answers

    answers = anyio.run(main)
    assert len(answers) == posts
    inbox_commits = sum(
        1
        for before, after in itertools.pairwise(statements)
        if after == "COMMIT" and "INSERT INTO dovetail_inbox" in before
    )
    assert inbox_commits == 1, f"{inbox_commits} commits for {posts} posts"
    stored = stored_payloads(path)
    for body, response in answers.items():
        assert response.status_code == 202, response.text
        assert stored[response.json()["id"]] == body, "the 202 names this request's row"


def test_posts_whose_commit_failed_get_503_and_nothing_of_them_is_kept(tmp_path: Path) -> None:
    """A transaction holding a refused row fails as a whole: its requests get 503 and leave
    nothing behind; requests in other transactions get 202 and are stored."""
    path = tmp_path / "state.db"

    async def main() -> dict[bytes, int]:
        store = SqliteStore(path)
        await store.open()
        connection = sqlite3.connect(path)
        connection.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON dovetail_inbox"
            " WHEN CAST(NEW.payload AS TEXT) LIKE '%refuse me%'"
            " BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
        connection.commit()
        connection.close()
        statuses: dict[bytes, int] = {}
        try:
            async with (
                receiving(tmp_path, UNSIGNED, store=store) as receiver,
                httpx.AsyncClient() as client,
            ):

                async def send(body: bytes) -> None:
                    statuses[body] = (await client.post(receiver.url, content=body)).status_code

                for wave in range(3):
                    async with anyio.create_task_group() as group:
                        for n in range(16):
                            note = "refuse me" if (wave, n) == (1, 5) else "ok"
                            group.start_soon(send, orjson.dumps({"n": f"{wave}-{n}", "note": note}))
        finally:
            await store.close()
        return statuses

    statuses = anyio.run(main)
    stored = set(stored_payloads(path).values())
    assert set(statuses.values()) == {202, 503}
    for body, status in statuses.items():
        if b"refuse me" in body:
            assert status == 503
        assert (status == 202) == (body in stored), (body, status)
