"""``sql`` sink: insert or upsert messages as rows of a SQLite, PostgreSQL or MariaDB/MySQL table,
in batches."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from dovetail.config.fields import JsonataExpr, ProjectFile
from dovetail.config.types import Duration
from dovetail.connectors.sql.urls import check_url
from dovetail.core.component import BuildContext
from dovetail.core.envelope import Envelope
from dovetail.errors import MessageError, PermanentError, TransientError
from dovetail.mapping.jsonata import compile_expression
from dovetail.plugins.spec import ComponentConfig, ComponentSpec

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.ext.asyncio import AsyncEngine

    from dovetail.connectors.sql.rows import RowBuilder
    from dovetail.connectors.sql.sqlite import SqliteDatabase
    from dovetail.connectors.sql.writer import RowWriter


class SqlSinkConfig(ComponentConfig):
    url: str
    """Database URL: `sqlite:///data/orders.db` (a path relative to the project directory;
    four slashes for an absolute path), `postgresql://user@host:5432/db` or
    `mariadb://user@host:3306/db` (also `mysql://`). Put passwords in a secret:
    `postgresql://app:${secret:DB_PASSWORD}@db/erp`."""

    table: str
    """The target table, optionally with its schema: `orders` or `sales.orders`."""

    mode: Literal["insert", "upsert"] = "insert"
    """`insert` adds rows (a duplicate key fails that message); `upsert` inserts or overwrites
    the row with the same `key`, so replays and duplicates are harmless."""

    key: list[str] = Field(default_factory=list)
    """Columns that identify a row: the table's primary key or a unique constraint. Required
    for `upsert`."""

    columns: dict[str, JsonataExpr] | None = None
    """Column name -> JSONata path or expression over the payload. Without it, the payload's
    top-level fields that are columns of the table are written and the rest ignored."""

    init_sql: ProjectFile | None = None
    """A SQL file run when the flow starts, before the table is inspected: idempotent DDL such
    as `CREATE TABLE IF NOT EXISTS`."""

    batch_size: int = Field(default=5000, ge=1, le=100_000)
    """Largest number of rows written in one transaction; bigger batches are split."""

    use_copy: bool = Field(default=True, alias="copy")
    """On PostgreSQL, write through `COPY` (into a temporary table, then `INSERT ... ON
    CONFLICT` for upserts) instead of a multi-row `INSERT`; several times faster."""

    pool_size: int = Field(default=5, ge=1, le=100)
    """Database connections kept open; concurrent batches wait for a free one."""

    timeout: Duration = 30.0
    """How long to wait for a connection, a lock or a statement before the batch is retried."""

    @model_validator(mode="after")
    def _check(self) -> SqlSinkConfig:
        check_url(self.url)
        if self.mode == "upsert" and not self.key:
            raise ValueError("mode upsert needs `key`: the columns that identify a row")
        if len(set(self.key)) != len(self.key):
            raise ValueError("`key` lists a column twice")
        if self.columns is not None:
            missing = [name for name in self.key if name not in self.columns]
            if missing:
                raise ValueError(f"key column(s) {', '.join(missing)} must be mapped in `columns`")
        return self


class SqlSink:
    """Writes each batch as rows of one table, one transaction per ``batch_size`` rows.

    ``write`` returns ``None`` for each message whose row is committed. A message whose payload
    cannot become a row, or whose row the database refuses (constraint, type), gets a
    ``PermanentError`` while the rest of its batch is still written (the batch is retried row by
    row). A lost connection, timeout, deadlock or locked database fails the whole batch with a
    ``TransientError``. In upsert mode several messages with the same key in one batch are
    applied in order (the last one wins). No row values are logged or put in reasons.
    """

    name = "sql"

    def __init__(self, config: SqlSinkConfig, context: BuildContext) -> None:
        self._config = config
        self._project_dir = context.project_dir
        self._init_sql = context.resolve(config.init_sql) if config.init_sql else None
        self._mapping = (
            {name: compile_expression(source) for name, source in config.columns.items()}
            if config.columns is not None
            else None
        )
        schema, _, table = config.table.rpartition(".")
        self._schema = schema or None
        self._table = table
        self._engine: AsyncEngine | None = None
        self._sqlite: SqliteDatabase | None = None
        self._rows: RowBuilder | None = None
        self._writer: RowWriter | None = None
        self._prepare_lock = asyncio.Lock()

    async def open(self) -> None:
        """Create the engine (SQLite: its connection thread), run ``init_sql`` and inspect
        the table.

        Raises ``PermanentError`` when the table is missing or does not fit the config. When
        the database cannot be reached the flow still starts: each batch then tries again and
        fails with a ``TransientError`` until the database answers.
        """
        from dovetail.connectors.sql.engine import create_engine, resolve_url

        url = resolve_url(self._config.url, self._project_dir)
        if url.get_backend_name() == "sqlite":
            from dovetail.connectors.sql.sqlite import SqliteDatabase

            self._sqlite = SqliteDatabase(url, timeout=self._config.timeout)
        else:
            self._engine = create_engine(
                url, pool_size=self._config.pool_size, timeout=self._config.timeout
            )
        with contextlib.suppress(TransientError):
            await self._prepare()

    async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
        """Write ``batch``; per message ``None`` (committed) or the error that failed it."""
        results: list[BaseException | None] = [None] * len(batch)
        if self._writer is None or self._rows is None:
            try:
                await self._prepare()
            except MessageError as error:
                return [error] * len(batch)
        size = self._config.batch_size
        for start in range(0, len(batch), size):
            await self._write_chunk(batch, range(start, min(start + size, len(batch))), results)
        return results

    async def close(self) -> None:
        """Close every connection."""
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
        if self._sqlite is not None:
            await self._sqlite.close()
            self._sqlite = None
        self._writer = None

    async def _prepare(self) -> None:
        from dovetail.connectors.sql.rows import RowBuilder

        async with self._prepare_lock:
            if self._writer is not None:
                return
            script = self._init_sql.read_text(encoding="utf-8") if self._init_sql else None
            table = await self._inspect(script)
            names = {column.name for column in table.columns}
            wanted = set(self._config.key) | set(self._config.columns or ())
            unknown = sorted(name for name in wanted if name not in names)
            if unknown:
                raise PermanentError(
                    f"table {self._config.table} has no column(s) {', '.join(unknown)}"
                )
            self._rows = RowBuilder(
                table,
                dialect="sqlite" if self._sqlite is not None else self._dialect(),
                mapping=self._mapping,
                key=self._config.key if self._config.mode == "upsert" else (),
                bind_dialect=self._sqlite.dialect if self._sqlite is not None else None,
            )
            self._writer = self._make_writer(table)

    async def _inspect(self, script: str | None) -> Table:
        """Run ``init_sql`` (when given), then reflect the target table."""
        if self._sqlite is not None:
            if script is not None:
                await self._sqlite.run_script(script)
            return await self._sqlite.reflect_table(self._table, self._schema)
        from dovetail.connectors.sql.engine import reflect_table, run_script

        if self._engine is None:
            raise RuntimeError("the sql sink is not open")
        if script is not None:
            await run_script(self._engine, script)
        return await reflect_table(self._engine, self._table, self._schema)

    def _dialect(self) -> str:
        if self._engine is None:
            raise RuntimeError("the sql sink is not open")
        return self._engine.dialect.name

    def _make_writer(self, table: Table) -> RowWriter:
        mode, key = self._config.mode, self._config.key
        if self._sqlite is not None:
            return self._sqlite.writer(table, mode=mode, key=key)
        from dovetail.connectors.sql.writer import TableWriter

        if self._engine is None:
            raise RuntimeError("the sql sink is not open")
        return TableWriter(self._engine, table, mode=mode, key=key, use_copy=self._config.use_copy)

    async def _write_chunk(
        self, batch: Sequence[Envelope], positions: range, results: list[BaseException | None]
    ) -> None:
        assert self._rows is not None
        assert self._writer is not None
        build = self._rows.build
        rows: list[tuple[int, dict[str, Any]]] = []
        for position in positions:
            try:
                rows.append((position, build(batch[position].payload)))
            except PermanentError as error:
                results[position] = error
        if not rows:
            return
        from dovetail.connectors.sql.engine import is_row_rejection

        try:
            await self._writer.write_all(self._merge_by_key(rows))
            return
        except MessageError as error:
            if not is_row_rejection(error):
                for position, _ in rows:
                    results[position] = error
                return
        try:
            outcomes = await self._writer.write_each([row for _, row in rows])
        except MessageError as error:
            outcomes = [error] * len(rows)
        for (position, _), outcome in zip(rows, outcomes, strict=True):
            results[position] = outcome

    def _merge_by_key(self, rows: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Upsert rows with equal keys folded into one, later values winning (ON CONFLICT
        cannot touch a row twice in one statement); insert rows unchanged."""
        if self._config.mode != "upsert":
            return [row for _, row in rows]
        assert self._rows is not None
        key_of, order = self._rows.key_of, self._rows.columns
        merged: dict[Hashable, dict[str, Any]] = {}
        for _, row in rows:
            key = key_of(row)
            earlier = merged.get(key)
            if earlier is None or earlier.keys() == row.keys():
                merged[key] = row
            else:
                both = {**earlier, **row}
                merged[key] = {name: both[name] for name in order if name in both}
        return list(merged.values())


SPEC = ComponentSpec(
    kind="sink",
    name="sql",
    config=SqlSinkConfig,
    factory=lambda config, context: SqlSink(config, context),
    summary=(
        "Insert or upsert messages as rows of a SQLite, PostgreSQL or MariaDB/MySQL table,"
        " in batches."
    ),
    description=(
        "Each message becomes one row: its top-level fields that are columns of the table, or"
        " the `columns` mapping of column to JSONata expression. Values are converted to the"
        " column types found by inspecting the table when the flow starts (ISO date strings to"
        " dates, numeric strings to numbers...). Each batch is written in one transaction; on"
        " PostgreSQL through `COPY` (`upsert` copies into a temporary table and merges it with"
        " `INSERT ... ON CONFLICT`), on SQLite as a multi-row `INSERT ... ON CONFLICT`, on"
        " MariaDB/MySQL as a multi-row `INSERT ... ON DUPLICATE KEY UPDATE`.\n\n"
        "A row the database refuses (a constraint, a value that does not fit) fails only its"
        " message, which is dead-lettered with the constraint or column named; the rest of the"
        " batch is written. Connection loss, timeouts, deadlocks and a locked SQLite database"
        " fail the batch for a retry. With `mode: upsert`, replays and duplicates are harmless;"
        " within one batch the last message for a key wins.\n\n"
        "`init_sql` runs an idempotent DDL file at start (`CREATE TABLE IF NOT EXISTS ...`)."
        " PostgreSQL needs the `postgresql` extra (asyncpg), MariaDB/MySQL the `mysql` extra"
        " (aiomysql)."
    ),
    examples=[
        "sql: {url: 'sqlite:///data/orders.db', table: orders, mode: upsert, key: [order_id]}",
        (
            "sql:\n"
            "  url: postgresql://app@db.internal/erp\n"
            "  table: sales.orders\n"
            "  mode: upsert\n"
            "  key: [order_id]\n"
            "  columns:\n"
            "    order_id: id\n"
            "    email: customer.email\n"
            "    total: $number(amount)\n"
            "  batch_size: 2000\n"
        ),
        (
            "sql:\n"
            "  url: mariadb://app:${secret:SHOP_DB_PASSWORD}@shop-db:3306/shop\n"
            "  table: stock_levels\n"
            "  mode: upsert\n"
            "  key: [sku, warehouse]\n"
        ),
    ],
)
