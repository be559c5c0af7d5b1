"""``sql`` source: read new rows of a table or query, in watermark order, with a saved watermark.

Each read takes the next ``batch_size`` rows after the current position (see ``watermark.py``)
and emits one message per row. Every message's ack settles its sequence number in an
``OrderedAcker``; ``commit()`` saves, in the store's checkpoint, the watermark (and key) of the
last row of the contiguous settled prefix. A row is settled when it is delivered, filtered or
dead-lettered, so a dead-lettered row does not hold the watermark back, while a row still in
flight does. After ``kill -9`` the next run reads again from the saved watermark: rows
delivered after the last checkpoint are delivered again, which an idempotency key (or an
upsert sink) absorbs.

Without a tie-breaker ``key`` the checkpoint only moves past whole groups of rows that share a
watermark value, and a read never splits such a group.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from dovetail.connectors.sql.source_config import SqlSourceConfig
from dovetail.connectors.sql.watermark import Position
from dovetail.core.ack import OrderedAcker, Settlement
from dovetail.core.component import BuildContext, Emit
from dovetail.core.envelope import Envelope, SourcePosition
from dovetail.errors import PermanentError, TransientError
from dovetail.plugins.spec import ComponentSpec

if TYPE_CHECKING:
    from dovetail.connectors.sql.reader import Fetched, QueryRunner
    from dovetail.connectors.sql.watermark import WatermarkQuery

log = structlog.get_logger("dovetail.connectors.sql")
_MAX_BACKOFF = 300.0
"""Longest pause between reads while the database cannot be reached (continuous mode)."""


class SqlSource:
    """Reads rows after the saved watermark; see the module docstring for the ack contract.

    ``run`` returns once no new row is left in ``once`` mode; otherwise it polls every
    ``interval``, and a database that cannot be reached is tried again with backoff.
    """

    name = "sql"

    def __init__(self, config: SqlSourceConfig, context: BuildContext) -> None:
        self._config = config
        self._context = context
        self._batch_size = config.batch_size or max(1, int(context.options.get("batch_size", 500)))
        watermark = config.watermark
        self._column = watermark.column
        self._key_column = watermark.key
        self._target = config.table or "query"
        self._checkpoint_key = f"sql:{self._target}:{self._column}"
        self._runner: QueryRunner | None = None
        self._query: WatermarkQuery | None = None
        self._position: Position | None = None
        self._initial_pending = False
        self._acker = OrderedAcker(0, on_advance=self._advanced)
        self._next_seq = 0
        self._ends: deque[tuple[int, Position]] = deque()
        self._settled: Position | None = None
        self._dirty = False
        self._commit_lock = asyncio.Lock()
        self._indexes: tuple[int, int | None] | None = None

    async def open(self) -> None:
        """Prepare the database access and load the saved watermark (nothing is read yet)."""
        from dovetail.connectors.sql.reader import open_runner
        from dovetail.connectors.sql.watermark import WatermarkQuery

        config = self._config
        self._runner = open_runner(config.url, self._context.project_dir, timeout=config.timeout)
        self._query = WatermarkQuery(
            quote=self._runner.quote,
            escape=self._runner.escape,
            column=self._column,
            key=self._key_column,
            query=config.query,
            table=config.table,
            columns=tuple(config.columns),
        )
        self._position = await self._load_checkpoint()
        if self._position is None and config.watermark.initial is not None:
            self._position = Position(config.watermark.initial, inclusive=True)
            self._initial_pending = True

    async def run(self, emit: Emit) -> None:
        """Emit batches of rows until none is left (``once``) or until cancelled."""
        failures = 0
        while True:
            try:
                rows, drained = await self._read()
            except TransientError as error:
                if self._context.once:
                    raise
                failures += 1
                pause = min(_MAX_BACKOFF, self._config.interval * 2 ** min(failures - 1, 10))
                log.warning(
                    "sql source cannot read; trying again",
                    flow=self._context.flow,
                    reason=error.reason,
                    retry_in=pause,
                )
                await anyio.sleep(pause)
                continue
            failures = 0
            for start in range(0, len(rows), self._batch_size):
                await emit(rows[start : start + self._batch_size])
            if drained:
                if self._context.once:
                    return
                await anyio.sleep(self._config.interval)

    async def commit(self) -> None:
        """Save the position of the last row of the settled prefix, when it moved."""
        async with self._commit_lock:
            if not self._dirty or self._settled is None:
                return
            self._dirty = False
            store = self._context.store
            if store is not None:
                await store.put_checkpoint(
                    self._context.flow, self._checkpoint_key, self._checkpoint(self._settled)
                )

    async def close(self) -> None:
        """Save what is settled and close the database connections."""
        try:
            await self.commit()
        finally:
            if self._runner is not None:
                await self._runner.close()
                self._runner = None

    # -- reading -------------------------------------------------------------------------------

    async def _read(self) -> tuple[list[Envelope], bool]:
        """The next rows as messages, and whether the rows available are all read."""
        runner, query = self._runner, self._query
        if runner is None or query is None:
            raise RuntimeError("the sql source is not open")
        if self._indexes is None:
            self._column_indexes(await runner.fetch(*query.probe()))
        if self._initial_pending and not await self._coerce_initial():
            return [], True
        limit = self._batch_size
        fetched = await runner.fetch(*query.select(self._position, limit))
        wm, key = self._column_indexes(fetched)
        rows = fetched.rows
        drained = len(rows) < limit
        if not drained and key is None:
            # never split a group of equal watermarks: keep the groups before the last one,
            # or, when the whole batch is one group, read that group entirely
            last = rows[-1][wm]
            cut = next(i for i, row in enumerate(rows) if row[wm] == last)
            if cut:
                rows = rows[:cut]
            else:
                fetched = await runner.fetch(*query.tie_group(last))
                rows = fetched.rows
        if not rows:
            return [], True
        return self._envelopes(fetched, rows, wm, key), drained

    async def _coerce_initial(self) -> bool:
        """Convert ``watermark.initial`` to the column's type (learnt from one row); False
        while the table has no row to learn it from."""
        from dovetail.connectors.sql.watermark import coerce_like

        assert self._runner is not None and self._query is not None
        assert self._position is not None
        fetched = await self._runner.fetch(*self._query.sample())
        wm, _ = self._column_indexes(fetched)
        if not fetched.rows:
            return False
        sample = fetched.rows[0][wm]
        try:
            value = coerce_like(self._position.watermark, sample)
        except (ValueError, TypeError, ArithmeticError):
            raise PermanentError(
                f"watermark.initial {self._position.watermark!r} does not fit the type of"
                f" column {self._column} ({type(sample).__name__})"
            ) from None
        self._position = Position(value, inclusive=True)
        self._initial_pending = False
        return True

    def _column_indexes(self, fetched: Fetched) -> tuple[int, int | None]:
        if self._indexes is not None:
            return self._indexes
        columns = fetched.columns
        missing = [
            name for name in (self._column, self._key_column) if name and name not in columns
        ]
        if missing:
            raise PermanentError(
                f"the rows read have no column {', '.join(missing)} (they have:"
                f" {', '.join(columns)}); the watermark column must be selected"
            )
        key = columns.index(self._key_column) if self._key_column else None
        self._indexes = (columns.index(self._column), key)
        return self._indexes

    def _envelopes(
        self, fetched: Fetched, rows: Sequence[tuple[Any, ...]], wm: int, key: int | None
    ) -> list[Envelope]:
        from dovetail.connectors.sql.records import json_value, payload_builder

        build = payload_builder(fetched.columns, fetched.json_columns, self._config.decimals)
        envelopes: list[Envelope] = []
        last_index = len(rows) - 1
        for index, row in enumerate(rows):
            seq = self._next_seq
            self._next_seq += 1
            position = Position(row[wm], row[key] if key is not None else None)
            # without a key, only the last row of a watermark group may become the checkpoint
            if key is not None or index == last_index or rows[index + 1][wm] != row[wm]:
                self._ends.append((seq, position))
            payload = build(row)
            ref = f"{self._target}:{self._column}={json_value(position.watermark)}"
            if key is not None:
                ref += f",{self._key_column}={json_value(position.key)}"
            envelopes.append(
                Envelope(
                    payload=payload,
                    settlement=Settlement(functools.partial(self._acker.settle, seq)),
                    position=SourcePosition(kind="sql", ref=ref),
                    original=payload,
                )
            )
        last = rows[-1]
        self._position = Position(last[wm], last[key] if key is not None else None)
        return envelopes

    # -- checkpoints ---------------------------------------------------------------------------

    async def _advanced(self, watermark: int) -> None:
        """Every row numbered below ``watermark`` is settled: the last such group end (a row
        after which nothing unsettled precedes it) becomes the position to save."""
        ends = self._ends
        while ends and ends[0][0] < watermark:
            _, self._settled = ends.popleft()
            self._dirty = True

    def _checkpoint(self, position: Position) -> dict[str, Any]:
        from dovetail.connectors.sql.watermark import encode_value

        return {
            "column": self._column,
            "key_column": self._key_column if position.key is not None else None,
            "watermark": encode_value(position.watermark),
            "key": encode_value(position.key) if position.key is not None else None,
        }

    async def _load_checkpoint(self) -> Position | None:
        from dovetail.connectors.sql.watermark import decode_value

        store = self._context.store
        if store is None:
            return None
        saved = await store.get_checkpoint(self._context.flow, self._checkpoint_key)
        if not saved or saved.get("column") != self._column:
            return None
        try:
            watermark = decode_value(saved["watermark"])
            if saved.get("key") is not None and saved.get("key_column") == self._key_column:
                return Position(watermark, decode_value(saved["key"]))
            # saved under another key setting: it may sit inside a group of equal watermarks
            return Position(watermark, inclusive=saved.get("key_column") is not None)
        except (KeyError, TypeError, ValueError, ArithmeticError):
            raise PermanentError(
                f"the saved watermark of {self._checkpoint_key} cannot be read; delete the"
                " checkpoint to read from watermark.initial"
            ) from None


SPEC = ComponentSpec(
    kind="source",
    name="sql",
    config=SqlSourceConfig,
    factory=lambda config, context: SqlSource(config, context),
    summary="Read new rows of a SQLite, PostgreSQL or MariaDB/MySQL table or query, by watermark.",
    description=(
        "Reads the rows of `table` (or of `query`) whose `watermark.column` is beyond the"
        " last row read, in watermark order, `batch_size` rows per query, and emits one"
        " message per row with the row's columns as fields (decimals as text, timestamps as"
        " ISO 8601 text, JSON columns parsed). With `dovetail run --once` it reads until no"
        " new row is left; otherwise it looks for new rows every `interval`.\n\n"
        "The watermark of the last row whose message is settled (delivered, filtered or"
        " dead-lettered, together with every row before it) is saved in the state store, so"
        " the next run carries on after it. A row still in flight holds it back: after a"
        " crash, rows delivered since the last save are read again; declare an idempotency"
        " key (or write with an upsert) so they take effect once. `watermark.key` (the"
        " primary key) breaks ties between rows with equal watermarks; without it, rows"
        " sharing a watermark value are always read together.\n\n"
        "The watermark must grow with every new or changed row (an auto-increment id, or an"
        " `updated_at` set when the row is written); rows with a null watermark are never"
        " read. PostgreSQL needs the `postgresql` extra (asyncpg), MariaDB/MySQL the `mysql`"
        " extra (aiomysql)."
    ),
    examples=[
        "sql:\n  url: sqlite:///data/shop.db\n  table: orders\n  watermark: {column: id}\n",
        "sql:\n"
        "  url: postgresql://app:${secret:ERP_DB_PASSWORD}@erp-db/erp\n"
        "  table: sales.orders\n"
        "  columns: [order_id, customer_id, total, status, updated_at]\n"
        "  watermark: {column: updated_at, key: order_id, initial: '2024-01-01T00:00:00'}\n"
        "  batch_size: 1000\n"
        "  interval: 30s\n",
        "sql:\n"
        "  url: mariadb://reader@shop-db:3306/shop\n"
        "  query: >-\n"
        "    SELECT p.sku, p.name, s.quantity, s.changed_at\n"
        "    FROM stock s JOIN products p ON p.id = s.product_id\n"
        "  watermark: {column: changed_at, key: sku}\n",
    ],
)
