"""Run a reconciliation: stage both sides on disk, pair them by key, report.

Memory stays bounded whatever the number of records. Two CSV files go to the analytical
engine (``engine``: DuckDB reads, groups and joins them, spilling to disk) when it is
installed; every other run, and a CSV file the engine cannot parse strictly, takes the
sort-merge: each side is streamed in chunks into a temporary SQLite database, read back in
key order (SQLite sorts on disk) and merged in one pass. Both live in a private temporary
folder, removed afterwards, and give the same counts and examples.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio
import anyio.to_thread

from dovetail.config.loader import Project, load_project
from dovetail.errors import ConfigError, DovetailError
from dovetail.reconcile.compare import Merger
from dovetail.reconcile.config import ReconcileConfig, load_reconciliation
from dovetail.reconcile.engine import open_engine
from dovetail.reconcile.fields import SeenFields, field_problems, locator, one_sided_fields
from dovetail.reconcile.readers import Chunk, read_side
from dovetail.reconcile.report import ReconcileReport
from dovetail.reconcile.staging import Side, Staging
from dovetail.reconcile.values import RowEncoder


async def reconcile_async(
    config: ReconcileConfig,
    *,
    project_dir: Path | str = ".",
    examples: int | None = None,
    workdir: Path | str | None = None,
) -> ReconcileReport:
    """Compare ``config.source`` with ``config.target``; the report has exact counts.

    Parsing, staging and merging run in worker threads; only network reads run on the event
    loop. ``workdir`` holds the temporary staging database or the engine's spill files
    (default: the system temp folder; it needs about the size of both sides' data). Raises
    ``TransientError`` or ``PermanentError`` (naming the side) when a side cannot be read, and
    ``ConfigError`` (located in the reconciliation file) when a key or rule names a field the
    data lacks.
    """
    root = Path(project_dir)
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    report = ReconcileReport(
        name=config.name or "reconcile",
        description=config.description,
        source=config.source.label(),
        target=config.target.label(),
        key=list(config.key),
        threshold=config.threshold,
        example_limit=config.examples if examples is None else examples,
        started_at=started_at,
        rules=config.rules(),
    )
    with tempfile.TemporaryDirectory(prefix="dovetail-reconcile-", dir=workdir) as folder:
        engine = open_engine(config, root, Path(folder))
        if engine is not None:
            try:
                seen = SeenFields()
                if await anyio.to_thread.run_sync(engine.stage, report, seen):
                    _check_fields(config, seen, report)
                    await anyio.to_thread.run_sync(engine.merge, report)
                    report.duration_seconds = time.perf_counter() - started
                    return report
            finally:
                engine.close()
        seen = SeenFields()
        staging = Staging(Path(folder) / "staging.db")
        try:
            for side in ("source", "target"):
                await _stage(config, root, side, staging, report, seen)
            report.source_records = staging.counts["source"]
            report.target_records = staging.counts["target"]
            seen.source_records, seen.target_records = report.source_records, report.target_records
            _check_fields(config, seen, report)
            await anyio.to_thread.run_sync(Merger(config, report).run, staging)
        finally:
            staging.close()
    report.duration_seconds = time.perf_counter() - started
    return report


def _check_fields(config: ReconcileConfig, seen: SeenFields, report: ReconcileReport) -> None:
    problems = field_problems(config, seen, locator(config.origin))
    if problems:
        raise ConfigError(problems)
    one_sided = one_sided_fields(config, seen)
    report.source_only_fields = one_sided["source_only"]
    report.target_only_fields = one_sided["target_only"]


async def _stage(
    config: ReconcileConfig,
    root: Path,
    side: Side,
    staging: Staging,
    report: ReconcileReport,
    seen: SeenFields,
) -> None:
    encoder = RowEncoder(config, source=side == "source")
    spec = config.source if side == "source" else config.target
    names = seen.source if side == "source" else seen.target

    def store(chunk: Chunk) -> None:
        staging.add(side, [encoder.encode(record) for record in chunk.records])
        for record in chunk.records:
            names.update(record)
        for where, reason in chunk.rejected:
            if side == "source":
                report.rejected_source += 1
            else:
                report.rejected_target += 1
            report.example(f"rejected_{side}", {"where": where, "reason": reason})

    async for chunk in read_side(spec, root, side):
        await anyio.to_thread.run_sync(store, chunk)


def run_reconciliation(
    config: ReconcileConfig | Path | str,
    *,
    project: Project | None = None,
    examples: int | None = None,
    workdir: Path | str | None = None,
) -> ReconcileReport:
    """Run a reconciliation from a ``ReconcileConfig`` or a reconciliation file path.

    Blocking; from async code (an ``async def`` python step) use ``reconcile_async``.
    Raises ``ConfigError`` for an invalid file and ``MessageError`` when a side cannot be read.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise DovetailError(
            "run_reconciliation blocks; from async code use"
            " `await dovetail.reconcile.reconcile_async(...)`"
        )
    if isinstance(config, ReconcileConfig):
        loaded = config
    else:
        project = project or load_project(Path(config))
        loaded = load_reconciliation(Path(config), project)
    root = (project or load_project()).root
    return anyio.run(
        lambda: reconcile_async(loaded, project_dir=root, examples=examples, workdir=workdir)
    )
