"""The PostgreSQL ``COPY`` fast path, on the asyncpg connection under SQLAlchemy's pool.

Insert mode copies the rows straight into the target table. Upsert mode copies them into a
temporary staging table shaped like the target's columns, then moves them with one ``INSERT ...
SELECT ... ON CONFLICT (key) DO UPDATE``. The staging table is made once per connection
(``CREATE TEMP TABLE IF NOT EXISTS``, a no-op once it is there) and emptied by every commit
(``ON COMMIT DELETE ROWS``), so a batch does no catalog work. It is created inside the batch's
transaction, so a connection that lost it (``DISCARD TEMP``, a transaction-mode pooler handing
out another server connection) simply makes it again. Rows are ordered
by key on the way in, so concurrent writers lock rows in the same order and do not deadlock
each other. The caller owns the transaction.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable, Sequence
from typing import Any

import orjson

Quote = Callable[[str], str]
"""Quotes an identifier for PostgreSQL when needed (the dialect's identifier preparer)."""


def stage_name(target: str, columns: Sequence[str]) -> str:
    """The staging table for a target and column set: stable, so that asyncpg reuses the
    statement it prepares to learn the column types (the target must keep its types)."""
    digest = hashlib.blake2s("\x00".join([target, *columns]).encode(), digest_size=6).hexdigest()
    return f"dovetail_stage_{digest}"


def to_records(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], json_columns: frozenset[str]
) -> list[tuple[Any, ...]]:
    """Rows as tuples in ``columns`` order; JSON columns as JSON text (the connection's codec)."""
    if not json_columns.intersection(columns):
        if len(columns) == 1:
            (only,) = columns
            return [(row[only],) for row in rows]
        pick = operator.itemgetter(*columns)
        return [pick(row) for row in rows]
    return [
        tuple(_json_text(row[name]) if name in json_columns else row[name] for name in columns)
        for row in rows
    ]


def _json_text(value: Any) -> Any:
    return None if value is None else orjson.dumps(value).decode()


def _target(schema: str | None, table: str, quote: Quote) -> str:
    return f"{quote(schema)}.{quote(table)}" if schema else quote(table)


async def copy_rows(
    connection: Any,
    *,
    schema: str | None,
    table: str,
    columns: Sequence[str],
    records: list[tuple[Any, ...]],
    key: Sequence[str],
    quote: Quote,
) -> None:
    """Write ``records`` (tuples in ``columns`` order) into ``schema.table`` with ``COPY``.

    ``connection`` is an ``asyncpg.Connection`` inside a transaction. With an empty ``key`` the
    rows are copied into the target (plain insert); otherwise they are upserted on ``key``
    through the connection's staging table: columns outside the key are overwritten, columns
    not in ``columns`` are left alone.
    Raises the driver's exceptions unchanged (the caller translates them).
    """
    if not key:
        await connection.copy_records_to_table(
            table, records=records, columns=list(columns), schema_name=schema
        )
        return
    target = _target(schema, table, quote)
    stage = stage_name(target, columns)
    column_list = ", ".join(quote(name) for name in columns)
    key_list = ", ".join(quote(name) for name in key)
    updates = [name for name in columns if name not in key]
    if updates:
        assignments = ", ".join(f"{quote(name)} = EXCLUDED.{quote(name)}" for name in updates)
        on_conflict = f"DO UPDATE SET {assignments}"
    else:
        on_conflict = "DO NOTHING"
    await connection.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS"
        f" SELECT {column_list} FROM {target} WITH NO DATA"
    )
    await connection.copy_records_to_table(stage, records=records, columns=list(columns))
    await connection.execute(
        f"INSERT INTO {target} ({column_list}) SELECT {column_list} FROM {stage}"
        f" ORDER BY {key_list} ON CONFLICT ({key_list}) {on_conflict}"
    )
