"""The ``sql`` source on SQLite, PostgreSQL and MariaDB: incremental reads, ties, checkpoints."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from databases import BACKENDS, Database, database_fixture

from dovetail.core.envelope import Envelope
from dovetail.errors import PermanentError
from dovetail.store.sqlite import SqliteStore
from dovetail.testing.components import build_component

FLOW = "test-flow"


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    yield from database_fixture(request, tmp_path)


class Kit:
    """Builds the source against one store file; reads, settles and inspects checkpoints."""

    def __init__(self, project: Path) -> None:
        self.project = project
        self.state = project / ".dovetail" / "state.db"
        self.state.parent.mkdir(exist_ok=True)

    async def read(
        self, snippet: str, *, settle: list[int] | None = None, close: bool = True
    ) -> list[Envelope]:
        """One ``--once`` run: read everything, settle ``settle`` (indexes; default all),
        commit; ``close=False`` dies without closing (a kill -9 after the last commit)."""
        store = SqliteStore(self.state)
        await store.open()
        try:
            source = build_component("source", snippet, self.project, store=store, flow=FLOW)
            batches: list[list[Envelope]] = []

            async def emit(batch: list[Envelope]) -> None:
                batches.append(batch)

            await source.open()
            try:
                await source.run(emit)
            except BaseException:
                await source.close()
                raise
            envelopes = [envelope for batch in batches for envelope in batch]
            for index in range(len(envelopes)) if settle is None else settle:
                await envelopes[index].settlement.settle()
            await source.commit()
            if close:
                await source.close()
            else:
                await source._runner.close()  # the process dies: nothing else runs
            self.batches = batches
            return envelopes
        finally:
            await store.close()

    async def checkpoint(self, key: str) -> dict[str, Any] | None:
        store = SqliteStore(self.state)
        await store.open()
        try:
            value: dict[str, Any] | None = await store.get_checkpoint(FLOW, key)
            return value
        finally:
            await store.close()


@pytest.fixture
def kit(tmp_path: Path) -> Kit:
    return Kit(tmp_path)


def source_yaml(database: Database, **fields: str) -> str:
    body = {"url": f"'{database.url}'", **fields}
    return "sql: {" + ", ".join(f"{key}: {value}" for key, value in body.items()) + "}"


def ids(envelopes: list[Envelope]) -> list[int]:
    return [int(envelope.payload["id"]) for envelope in envelopes]


def make_orders(database: Database) -> str:
    table = database.table("orders")
    database.execute(
        f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, version INTEGER NOT NULL,"
        f" updated_at {database.timestamp}, total DECIMAL(10, 2), name VARCHAR(40))"
    )
    return table


def insert(database: Database, table: str, rows: list[tuple[int, int]]) -> None:
    values = ", ".join(
        f"({id_}, {version}, '2024-03-01 08:00:{id_ % 60:02d}', {id_}.50, 'n{id_}')"
        for id_, version in rows
    )
    database.execute(f"INSERT INTO {table} (id, version, updated_at, total, name) VALUES {values}")


def test_each_run_reads_only_the_rows_added_since_the_last(database: Database, kit: Kit) -> None:
    table = make_orders(database)
    insert(database, table, [(n, n) for n in range(1, 6)])
    snippet = source_yaml(database, table=table, watermark="{column: version}", batch_size="2")

    first = anyio.run(kit.read, snippet)
    assert ids(first) == [1, 2, 3, 4, 5]
    # without a key a full batch ends before its last watermark, which the next read takes
    assert [len(batch) for batch in kit.batches] == [1, 1, 1, 1, 1]
    insert(database, table, [(n, n) for n in range(6, 9)])
    assert ids(anyio.run(kit.read, snippet)) == [6, 7, 8]
    assert anyio.run(kit.read, snippet) == []
    saved = anyio.run(kit.checkpoint, f"sql:{table}:version")
    assert saved is not None
    assert saved["watermark"] == {"type": "int", "value": 8}


def test_rows_become_json_safe_payloads_with_positions(database: Database, kit: Kit) -> None:
    table = make_orders(database)
    insert(database, table, [(7, 1)])
    snippet = source_yaml(database, table=table, watermark="{column: version, key: id}")

    (envelope,) = anyio.run(kit.read, snippet)

    payload = envelope.payload
    assert payload["id"] == 7
    assert payload["name"] == "n7"
    if database.backend == "sqlite":  # SQLite keeps what it was given: text and floats
        assert payload["updated_at"] == "2024-03-01 08:00:07"
        assert payload["total"] == 7.5
    else:
        assert payload["updated_at"] == "2024-03-01T08:00:07"
        assert payload["total"] == "7.50"
    assert envelope.original == payload
    assert envelope.position is not None
    assert envelope.position.kind == "sql"
    assert envelope.position.ref == f"{table}:version=1,id=7"


def test_ties_on_the_watermark_are_neither_skipped_nor_repeated_with_a_key(
    database: Database, kit: Kit
) -> None:
    table = make_orders(database)
    insert(database, table, [(n, 1 if n <= 7 else 2) for n in range(1, 11)])
    snippet = source_yaml(
        database, table=table, watermark="{column: version, key: id}", batch_size="3"
    )

    # the process dies after rows 1-4 are settled: the checkpoint sits inside the tie
    first = anyio.run(lambda: kit.read(snippet, settle=[0, 1, 2, 3], close=False))
    assert ids(first) == list(range(1, 11))
    assert [len(batch) for batch in kit.batches] == [3, 3, 3, 1]
    saved = anyio.run(kit.checkpoint, f"sql:{table}:version")
    assert saved is not None
    assert (saved["watermark"]["value"], saved["key"]["value"]) == (1, 4)

    assert ids(anyio.run(kit.read, snippet)) == list(range(5, 11))
    assert anyio.run(kit.read, snippet) == []


def test_without_a_key_a_group_of_equal_watermarks_is_read_whole(
    database: Database, kit: Kit
) -> None:
    table = make_orders(database)
    versions = {1: 1, 2: 1, 3: 1, 4: 1, 5: 2, 6: 2, 7: 3}
    insert(database, table, list(versions.items()))
    snippet = source_yaml(database, table=table, watermark="{column: version}", batch_size="3")

    # rows 1-3 settled, row 4 (same watermark) not: nothing can be saved yet
    first = anyio.run(lambda: kit.read(snippet, settle=[0, 1, 2], close=False))
    assert sorted(ids(first)) == list(range(1, 8))
    assert len(first) == 7
    assert anyio.run(kit.checkpoint, f"sql:{table}:version") is None

    second = anyio.run(lambda: kit.read(snippet, settle=[0, 1, 2, 3, 4], close=False))
    assert len(second) == 7
    saved = anyio.run(kit.checkpoint, f"sql:{table}:version")
    assert saved is not None
    assert saved["watermark"]["value"] == 1  # group 2 is only half settled

    assert sorted(ids(anyio.run(kit.read, snippet))) == [5, 6, 7]


def test_the_checkpoint_stops_at_the_first_unsettled_row(database: Database, kit: Kit) -> None:
    table = make_orders(database)
    insert(database, table, [(n, n) for n in range(1, 11)])
    snippet = source_yaml(
        database, table=table, watermark="{column: version, key: id}", batch_size="4"
    )

    # settled out of order; rows 4 and 8 are still in flight when the process dies
    anyio.run(lambda: kit.read(snippet, settle=[9, 0, 2, 1, 4, 5, 6, 8], close=False))
    saved = anyio.run(kit.checkpoint, f"sql:{table}:version")
    assert saved is not None
    assert saved["watermark"]["value"] == 3

    assert ids(anyio.run(kit.read, snippet)) == list(range(4, 11))


def test_a_query_with_a_timestamp_watermark_starts_at_initial(database: Database, kit: Kit) -> None:
    table = make_orders(database)
    insert(database, table, [(n, 1) for n in range(1, 6)])
    query = f"SELECT id, updated_at, name FROM {table} WHERE name <> 'n:3'"
    snippet = source_yaml(
        database,
        query=f'"{query}"',
        watermark="{column: updated_at, key: id, initial: '2024-03-01T08:00:02'}",
    )

    assert ids(anyio.run(kit.read, snippet)) == [2, 3, 4, 5]
    insert(database, table, [(6, 1)])
    assert ids(anyio.run(kit.read, snippet)) == [6]


def test_initial_waits_for_a_first_row_on_an_empty_table(database: Database, kit: Kit) -> None:
    table = make_orders(database)
    snippet = source_yaml(database, table=table, watermark="{column: version, initial: 3}")

    assert anyio.run(kit.read, snippet) == []
    insert(database, table, [(n, n) for n in range(1, 6)])
    assert ids(anyio.run(kit.read, snippet)) == [3, 4, 5]


def test_a_query_without_the_watermark_column_fails_with_the_columns_it_has(
    database: Database, kit: Kit
) -> None:
    table = make_orders(database)
    snippet = source_yaml(
        database, query=f"'SELECT id, name FROM {table}'", watermark="{column: version}"
    )

    with pytest.raises(PermanentError, match=r"no column version.*id, name"):
        anyio.run(kit.read, snippet)


def test_rows_with_a_null_watermark_are_not_read(database: Database, kit: Kit) -> None:
    table = database.table("events")
    database.execute(
        f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, seq INTEGER)",
        f"INSERT INTO {table} VALUES (1, NULL), (2, 5), (3, NULL), (4, 6)",
    )
    snippet = source_yaml(database, table=table, columns="[id, seq]", watermark="{column: seq}")

    assert ids(anyio.run(kit.read, snippet)) == [2, 4]
