"""Kill -9 of a ``dovetail run`` that consumes a broker into a SQLite table, over and over.

Every broker connector (amqp, nats, mqtt, redis) proves the same guarantee the same way: a
producer thread sends keyed messages while ``CrashHarness`` kills the consuming run at random
moments; a last run drains everything; then every key the broker confirmed must be in the
table exactly once, and nothing dead-lettered. ``broker_crash`` is that plan; a test brings
its flow (``table_project``), its ``Producer`` and its broker-side ``drained`` check::

    database = table_project(tmp_path, table_flow(NAME, source=SOURCE, ...), INIT_SQL)
    table = TableWatch(database, "orders", "order_id")
    report = broker_crash(tmp_path, producer=Publisher(queue), table=table, env=env)
    assert report.ok, report.describe()
    assert dead_letters(tmp_path) == []
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import textwrap
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from dovetail.testing.crash import (
    CrashHarness,
    CrashHarnessError,
    CrashReport,
    dovetail_executable,
)


class Producer(Protocol):
    """Sends messages to a broker from a thread while a ``broker_crash`` goes on.

    ``sent`` holds the keys the broker confirmed; ``finish()`` is called once the kills are
    over (stop the steady traffic; send a tail so the final run has work); ``stop()`` ends
    everything and may be called more than once.
    """

    @property
    def sent(self) -> Sequence[str]: ...

    @property
    def done(self) -> bool: ...

    def start(self) -> None: ...

    def finish(self) -> None: ...

    def stop(self) -> None: ...


class ProducerThread:
    """A ``Producer`` whose traffic runs in a daemon thread.

    A subclass writes ``produce()``: send until ``stopping`` is set, appending each key the
    broker confirmed to ``sent``; and, if the final run needs work after the kills,
    ``send_tail()``, which ``finish()`` calls once ``produce()`` has stopped. An exception
    that ends ``produce()`` is kept in ``errors`` for the test to assert on.
    """

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.errors: list[str] = []
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)

    def produce(self) -> None:
        """Send until ``stopping`` is set (in the thread)."""
        raise NotImplementedError

    def send_tail(self) -> None:
        """Send what the final run must still find (nothing by default)."""

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=10)

    def finish(self) -> None:
        self.stop()
        self.send_tail()

    def _main(self) -> None:
        try:
            self.produce()
        except Exception as exc:  # the test asserts on it
            self.errors.append(repr(exc))


class TableWatch:
    """Reads, while a flow writes it, the keys of a SQLite table at ``database``.

    Reads never wait for the writer: a missing file, table or a lock reads as the last
    count known (``count``) or as no keys (``keys``), and the caller asks again.
    """

    def __init__(self, database: Path, table: str, key: str) -> None:
        self.database = database
        self.table = table
        self.key = key
        self._last = 0

    def query(self, sql: str) -> list[tuple[object, ...]]:
        """Rows of ``sql``, or ``[]`` while the database is absent or busy."""
        if not self.database.exists():
            return []
        try:
            with sqlite3.connect(self.database, timeout=0.2) as db:
                return list(db.execute(sql))
        except sqlite3.Error:
            return []

    def keys(self) -> list[str]:
        """The key of every row."""
        return [str(row[0]) for row in self.query(f"SELECT {self.key} FROM {self.table}")]

    def count(self) -> int:
        """Rows so far: never less than the last count read."""
        rows = self.query(f"SELECT count(*) FROM {self.table}")
        if rows:
            self._last = max(self._last, int(str(rows[0][0])))
        return self._last


def table_flow(
    name: str,
    *,
    source: str,
    table: str,
    key: str,
    idempotency_key: str,
    steps: str = "",
    runtime: str = "{batch_size: 100, workers: 2}",
) -> str:
    """The text of a flow that upserts what ``source`` (the YAML under ``source:``) reads, after
    ``steps`` (the YAML under ``steps:``, if any), into ``table`` of ``data/out.db`` by
    ``key``, with ``delivery.idempotency_key``."""
    lines = [f"flow: {name}", "version: 1.0.0", "source:", textwrap.indent(source.strip(), "  ")]
    if steps:
        lines += ["steps:", textwrap.indent(steps.strip(), "  ")]
    lines += [
        "sink:",
        "  sql:",
        "    url: sqlite:///data/out.db",
        "    init_sql: sql/init.sql",
        f"    table: {table}",
        "    mode: upsert",
        f"    key: [{key}]",
        "delivery:",
        f"  idempotency_key: {idempotency_key}",
        f"runtime: {runtime}",
    ]
    return "\n".join(lines) + "\n"


def table_project(root: Path, flow: str, init_sql: str) -> Path:
    """A project whose one flow (YAML text ``flow``) writes into ``data/out.db``, whose
    tables ``init_sql`` creates (``sql/init.sql``); returns the database path."""
    name = str(flow.split("\n", 1)[0].removeprefix("flow:").strip())
    for folder in ("flows", "sql", "data"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "dovetail.yaml").write_text(f"project: crash-{name}\n")
    (root / "flows" / f"{name}.yaml").write_text(flow)
    (root / "sql" / "init.sql").write_text(init_sql)
    return root / "data" / "out.db"


def dead_letters(project_dir: Path) -> list[object]:
    """Every dead letter of the project's store, any status (``dlq list --json``)."""
    listed = subprocess.run(
        [str(dovetail_executable()), "dlq", "list", "--status", "all", "--json"],
        cwd=project_dir,
        capture_output=True,
        check=True,
    )
    letters = json.loads(listed.stdout)
    if not isinstance(letters, list):
        raise CrashHarnessError(f"dlq list --json gave {type(letters).__name__}, not a list")
    return letters


def broker_crash(
    project_dir: Path,
    *,
    producer: Producer,
    table: TableWatch,
    env: Mapping[str, str],
    kills: int = 10,
    interval: tuple[float, float] = (0.3, 1.0),
    seed: int = 20261129,
    drained: Callable[[], bool] | None = None,
    **options: Any,
) -> CrashReport:
    """Kill a server-mode ``dovetail run`` that consumes a broker into ``table``, ``kills``
    times, while ``producer`` sends; then let one run drain everything and stop it.

    The kill delay counts from the moment rows arrive (``table.count``, unless ``options``
    name another ``activity``). The final run ends once the producer is done, the table holds
    as many rows as it sent and ``drained()`` (a broker-side check) is true. The report
    compares the producer's keys with the table's. ``options`` go to ``CrashHarness``.
    """
    options.setdefault("activity", table.count)
    harness = CrashHarness(
        project_dir, kills=kills, interval=interval, seed=seed, once=False, env=env, **options
    )

    def finished() -> bool:
        if not producer.done or table.count() < len(producer.sent):
            return False
        return drained is None or drained()

    producer.start()
    try:
        return harness.run(
            expected=lambda: list(producer.sent),
            delivered=table.keys,
            until=finished,
            after_kills=producer.finish,
        )
    finally:
        producer.stop()
