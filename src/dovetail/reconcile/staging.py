"""Disk staging for the sort-merge: each side's records in a temporary SQLite database.

Records arrive in any order and any number; they are written in chunks (one transaction per
chunk) to a table per side and read back in key order, a chunk at a time. The ordering is
SQLite's external merge sort (sorted runs in temporary files, merged), which reads the table
sequentially; on a million shuffled keys it is about twice as fast as building an index and
walking it. Memory stays bounded by the chunk size, SQLite's page cache and its sorter,
whatever the number of records: neither side is ever held whole.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

Side = Literal["source", "target"]

CACHE_KIB = 32 * 1024
"""SQLite page cache per connection, in KiB (the bound on staging memory)."""
FETCH_ROWS = 5000


class Staging:
    """A temporary SQLite database holding both sides, keyed for a merge in key order.

    Not thread-safe: use it from one thread at a time (it may move between threads).
    """

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in (
            "journal_mode = OFF",
            "synchronous = OFF",
            "temp_store = FILE",
            f"cache_size = -{CACHE_KIB}",
            "locking_mode = EXCLUSIVE",
        ):
            self._db.execute(f"PRAGMA {pragma}")
        for side in ("source", "target"):
            self._db.execute(f"CREATE TABLE {side} (k BLOB NOT NULL, v BLOB NOT NULL)")
        self.counts: dict[Side, int] = {"source": 0, "target": 0}

    def add(self, side: Side, rows: Sequence[tuple[bytes, bytes]]) -> None:
        """Append one chunk of ``(key, fields)`` rows to ``side`` in one transaction."""
        if not rows:
            return
        self._db.execute("BEGIN")
        self._db.executemany(f"INSERT INTO {side} (k, v) VALUES (?, ?)", rows)
        self._db.execute("COMMIT")
        self.counts[side] += len(rows)

    def in_key_order(self, side: Side) -> Iterator[tuple[bytes, bytes]]:
        """``side``'s rows in key order (equal keys in arrival order), fetched in chunks.

        Two of these iterators (one per side) may be open at once on the same connection.
        """
        cursor = self._db.execute(f"SELECT k, v FROM {side} ORDER BY k, rowid")
        try:
            while True:
                chunk: list[tuple[bytes, bytes]] = cursor.fetchmany(FETCH_ROWS)
                if not chunk:
                    return
                yield from chunk
        finally:
            cursor.close()

    def close(self) -> None:
        """Close the database (the caller removes its folder)."""
        self._db.close()
