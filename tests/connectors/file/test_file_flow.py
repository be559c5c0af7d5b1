"""A flow from a file source to a file sink, run by the real runner with the SQLite store."""

from __future__ import annotations

from pathlib import Path

import anyio
import orjson

from dovetail.api import run_flow
from dovetail.store.base import DeadLetterQuery
from dovetail.store.sqlite import SqliteStore

FLOW = """\
flow: orders
version: 1.0.0
source:
  file: {path: inbox/*.csv, after: {move_to: archive/, on_error_move_to: error/}}
sink:
  file: {path: outbox/orders.jsonl}
delivery:
  idempotency_key: order_id
runtime: {batch_size: 2}
"""


def test_file_to_file_flow_delivers_good_rows_and_dead_letters_the_bad_one(
    project: Path,
) -> None:
    (project / "flows/orders.yaml").write_text(FLOW, encoding="utf-8")
    (project / "inbox").mkdir()
    (project / "inbox/a.csv").write_text("order_id,total\n1,10\n2,20,x\n3,30\n4,40\n5,50\n")
    (project / "inbox/b.csv").write_text('order_id,total\n6,"60\n')

    summary = run_flow(project / "flows/orders.yaml")

    lines = (project / "outbox/orders.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["order_id"] for line in lines] == ["1", "3", "4", "5"]
    assert summary.dead_lettered == 2  # a row with too many fields, a quote never closed
    assert sorted(p.name for p in (project / "archive").iterdir()) == ["a.csv", "b.csv"]
    assert list((project / "inbox").iterdir()) == []

    async def dead_letters() -> list[tuple[str, object, object]]:
        store = SqliteStore(project / ".dovetail/state.db")
        await store.open()
        try:
            letters = await store.dead_letters(DeadLetterQuery(flow="orders"))
        finally:
            await store.close()
        return sorted(
            ((d.reason, d.payload, d.source_position) for d in letters),
            key=lambda letter: str(letter[2]),
        )

    (reason, payload, position), (cut_reason, cut_payload, _) = anyio.run(dead_letters)
    assert reason == "line 3: expected 2 fields, found 3"
    assert payload == "2,20,x\n"
    assert position == {"kind": "file", "ref": "inbox/a.csv", "offset": 1, "line": 3}
    assert cut_reason == (
        "line 2: malformed CSV: a quoted field is never closed before the end of the file"
    )
    assert cut_payload == '6,"60\n'

    again = run_flow(project / "flows/orders.yaml")
    assert again.received == 0


PER_MESSAGE = """\
flow: invoices
version: 1.0.0
source:
  file: {path: inbox/*.jsonl}
sink:
  file: {path: outbox/, format: json, filename: name}
delivery:
  retry: {attempts: 4, initial: 0.2s, park_after: null}
"""


def test_invalid_file_names_are_dead_lettered_at_the_first_attempt(project: Path) -> None:
    (project / "flows/invoices.yaml").write_text(PER_MESSAGE, encoding="utf-8")
    (project / "inbox").mkdir()
    names = [".", "x" * 300, "good.json"]
    (project / "inbox/i.jsonl").write_bytes(
        b"".join(orjson.dumps({"name": n}) + b"\n" for n in names)
    )

    summary = run_flow(project / "flows/invoices.yaml")

    assert summary.dead_lettered == 2 and summary.retries == 0
    assert sorted(p.name for p in (project / "outbox").iterdir()) == ["good.json"]

    async def dead_letters() -> list[tuple[int, str]]:
        store = SqliteStore(project / ".dovetail/state.db")
        await store.open()
        try:
            letters = await store.dead_letters(DeadLetterQuery(flow="invoices"))
        finally:
            await store.close()
        return sorted((d.attempt, d.reason) for d in letters)

    assert anyio.run(dead_letters) == [
        (1, "filename '.' names a folder, not a file"),
        (1, "filename has a part of 300 bytes; file names are limited to 255 bytes"),
    ]
