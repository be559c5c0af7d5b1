"""Read one side of a reconciliation as a stream of chunks of records.

Files (CSV, JSON, JSON Lines) are parsed by the file connector's readers in a worker thread,
a chunk at a time; SQL queries stream through a server-side cursor; REST collections page
(see ``rest``). Malformed records are counted and shown as rejected, never fatal; a side
that cannot be read at all raises a ``MessageError`` naming it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from dovetail.connectors.file.formats import ReaderOptions, Record
from dovetail.connectors.file.readers import read_records
from dovetail.errors import MessageError, PermanentError, TransientError
from dovetail.reconcile.config import FileInput, SideConfig, SqlInput, file_format

CHUNK_ROWS = 5000


@dataclass(slots=True)
class Chunk:
    """Records read from one side, and the ones that could not be read: (where, reason)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)


def read_side(side: SideConfig, project_dir: Path, role: str) -> AsyncIterator[Chunk]:
    """The chunks of one side; ``role`` (``source``/``target``) names it in errors."""
    if side.sql is not None:
        return read_sql(side.sql, project_dir, role)
    if side.rest is not None:
        from dovetail.reconcile.rest import read_rest

        return read_rest(side.rest, role)
    return read_file(side.file(), file_format(side), project_dir, role)


async def read_file(
    file: FileInput, fmt: str, project_dir: Path, role: str
) -> AsyncIterator[Chunk]:
    """Chunks of a CSV, JSON or JSON Lines file, parsed in a worker thread."""
    path = Path(file.path) if Path(file.path).is_absolute() else project_dir / file.path
    options = ReaderOptions(format=fmt, encoding=file.encoding, delimiter=file.delimiter)
    records = read_records(path, options)
    try:
        while True:
            chunk = await anyio.to_thread.run_sync(_take, records, file.path, role)
            if not chunk.records and not chunk.rejected:
                return
            yield chunk
    finally:
        close = getattr(records, "close", None)
        if close is not None:
            close()


def _take(records: Iterator[Record], shown: str, role: str) -> Chunk:
    chunk = Chunk()
    for record in records:
        if record.fatal:
            raise PermanentError(f"{role} {shown}: {record.error}")
        if record.error is not None:
            chunk.rejected.append((f"{shown}:{record.line}", record.error))
        else:
            chunk.records.append(record.payload)
        if len(chunk.records) + len(chunk.rejected) >= CHUNK_ROWS:
            break
    return chunk


async def read_sql(config: SqlInput, project_dir: Path, role: str) -> AsyncIterator[Chunk]:
    """Chunks of a query's rows, streamed (``batch_size`` rows per fetch)."""
    from sqlalchemy import text

    from dovetail.connectors.sql.engine import (
        create_engine,
        is_memory,
        resolve_url,
        translate_error,
    )

    try:
        url = resolve_url(config.url, project_dir)
    except ValueError as exc:
        raise PermanentError(f"{role} database URL: {exc}") from None
    sqlite_file = url.get_backend_name() == "sqlite" and not is_memory(url)
    if sqlite_file and not await anyio.Path(url.database or "").is_file():
        raise PermanentError(f"{role}: SQLite database {url.database} does not exist")
    engine = create_engine(url, pool_size=1, timeout=config.timeout)
    try:
        async with engine.connect() as connection:
            result = await connection.stream(
                text(config.query).execution_options(yield_per=config.batch_size),
                config.params,
            )
            async for rows in result.mappings().partitions(config.batch_size):
                yield Chunk(records=[dict(row) for row in rows])
    except MessageError:
        raise
    except Exception as exc:
        error = translate_error(exc)
        kind = TransientError if isinstance(error, TransientError) else PermanentError
        raise kind(f"{role} query failed: {error.reason}", detail=error.detail) from None
    finally:
        await engine.dispose()
