"""Property: any sequence of upsert batches leaves the table equal to a dict model.

The model applies, in order, every message the sink reports as written: a later message for a
key overwrites the columns it carries and keeps the others (last write wins). Messages carrying
a value the table refuses (``value < 0`` breaks a CHECK) must be reported as permanent failures
unless a later message in the same batch overwrites that value; every other message is written.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sql_support import build_sink, envelopes, pg_execute, pg_fetch

from dovetail.errors import PermanentError

Row = dict[str, Any]

rows_strategy = st.fixed_dictionaries(
    {"k": st.integers(min_value=0, max_value=4)},
    optional={
        "value": st.integers(min_value=-2, max_value=9),
        "note": st.sampled_from(["a", "b", "semi;colon", "quote'd", ""]),
    },
)
batches_strategy = st.lists(st.lists(rows_strategy, min_size=1, max_size=8), min_size=1, max_size=4)


def table_ddl(name: str) -> str:
    return (
        f"CREATE TABLE {name} (k integer PRIMARY KEY, value integer CHECK (value >= 0), note text)"
    )


async def apply_batches(
    sink: Any, batches: list[list[Row]]
) -> tuple[dict[int, Row], list[list[BaseException | None]]]:
    """Write every batch; the model built from what the sink reported, and the reports."""
    model: dict[int, Row] = {}
    reports = []
    await sink.open()
    try:
        for batch in batches:
            results = await sink.write(envelopes([dict(row) for row in batch]))
            reports.append(results)
            for row, result in zip(batch, results, strict=True):
                if result is None:
                    current = model.setdefault(
                        row["k"], {"k": row["k"], "value": None, "note": None}
                    )
                    current.update(row)
    finally:
        await sink.close()
    return model, reports


def check_reports(batches: list[list[Row]], reports: list[list[BaseException | None]]) -> None:
    for batch, results in zip(batches, reports, strict=True):
        for position, (row, result) in enumerate(zip(batch, results, strict=True)):
            bad = row.get("value", 0) < 0
            overwritten = any(
                "value" in later and later["k"] == row["k"] for later in batch[position + 1 :]
            )
            if not bad:
                assert result is None, (row, result)
            elif not overwritten:
                assert isinstance(result, PermanentError), (row, result)


@settings(max_examples=60, deadline=None)
@given(batches=batches_strategy)
def test_sqlite_upserts_match_the_model(batches: list[list[Row]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        project = Path(directory)
        connection = sqlite3.connect(project / "kv.db")
        connection.execute(table_ddl("kv"))
        connection.close()
        sink = build_sink(
            "sql: {url: 'sqlite:///kv.db', table: kv, mode: upsert, key: [k], batch_size: 3}",
            project,
        )

        model, reports = asyncio.run(apply_batches(sink, batches))

        connection = sqlite3.connect(project / "kv.db")
        connection.row_factory = sqlite3.Row
        stored = {row["k"]: dict(row) for row in connection.execute("SELECT * FROM kv")}
        connection.close()
    assert stored == model
    check_reports(batches, reports)


@pytest.mark.postgres
@pytest.mark.parametrize("copy", ["true", "false"], ids=["copy", "insert"])
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=batches_strategy)
def test_postgres_upserts_match_the_model(
    postgres_url: str, pg_schema: str, copy: str, batches: list[list[Row]]
) -> None:
    table = f"{pg_schema}.kv_{uuid.uuid4().hex[:8]}"
    asyncio.run(pg_execute(postgres_url, table_ddl(table)))
    with tempfile.TemporaryDirectory() as directory:
        sink = build_sink(
            f"sql: {{url: '{postgres_url}', table: {table}, mode: upsert, key: [k],"
            f" copy: {copy}, batch_size: 3}}",
            Path(directory),
        )
        model, reports = asyncio.run(apply_batches(sink, batches))

    stored = {
        row["k"]: row for row in asyncio.run(pg_fetch(postgres_url, f"SELECT * FROM {table}"))
    }
    asyncio.run(pg_execute(postgres_url, f"DROP TABLE {table}"))
    assert stored == model
    check_reports(batches, reports)
