"""``reconcile``: run a reconciliation file for each message (typically a ``schedule`` tick)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import anyio.to_thread
from pydantic import Field, ValidationInfo, field_validator

from dovetail.config.fields import ProjectFile, project_dir_of
from dovetail.config.loader import Project, load_project
from dovetail.core.component import BuildContext, StepOutcome
from dovetail.core.envelope import Envelope
from dovetail.core.steps import mark_failed
from dovetail.errors import ConfigError, PermanentError
from dovetail.plugins.spec import ComponentConfig, ComponentSpec
from dovetail.reconcile.config import load_reconciliation
from dovetail.reconcile.render import format_for, write_report
from dovetail.reconcile.report import floor_percent
from dovetail.reconcile.run import reconcile_async
from dovetail.safety.paths import PathEscapeError, check_relative, confine


class ReconcileStepConfig(ComponentConfig):
    config: ProjectFile
    """The reconciliation file (`reconcile/orders.yaml`), relative to the project."""
    output: str | None = None
    """Write the report here (project-relative); `{date}` and `{time}` are replaced by the
    UTC date (`2024-05-31`) and time (`061500`) of the run."""
    format: Literal["markdown", "html", "json"] | None = None
    """Report format; default: from the `output` suffix (`.md`, `.html`, `.json`)."""
    on_below_threshold: Literal["dead_letter", "pass"] = "dead_letter"
    """`dead_letter`: a run below the threshold fails the message (it shows in the DLQ and
    `dovetail run` exits 3); `pass`: the summary goes on to the sinks either way."""
    examples: int | None = Field(default=None, ge=0)
    """Example rows per category (default: the reconciliation file's `examples`)."""

    @field_validator("config")
    @classmethod
    def _loads(cls, value: str, info: ValidationInfo) -> str:
        root = project_dir_of(info)
        if root is not None:
            try:
                load_reconciliation(root / value, _project_at(root), strict=False)
            except ConfigError as exc:
                raise ValueError("\n".join(str(p) for p in exc.problems)) from None
        return value

    @field_validator("output")
    @classmethod
    def _inside(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return check_relative(value, what="output")
        except PathEscapeError as exc:
            raise ValueError(exc.reason) from None


def _project_at(root: Path) -> Project:
    return load_project(root)


class ReconcileStep:
    """Runs the reconciliation once per message and replaces the payload with its summary.

    The summary holds every count, the accuracy, the threshold, ``passed`` and the report
    path. A run below the threshold fails the message (``on_below_threshold: dead_letter``);
    a side that cannot be read fails it with the reader's error (transient or permanent).
    """

    name = "reconcile"

    def __init__(self, config: ReconcileStepConfig, context: BuildContext) -> None:
        self._config = config
        self._root = Path(context.project_dir)

    async def open(self) -> None:
        """Nothing to open: the reconciliation file is read on every run."""

    async def close(self) -> None:
        """Nothing to close."""

    async def process(self, batch: Sequence[Envelope]) -> StepOutcome:
        outcome = StepOutcome()
        for envelope in batch:
            try:
                envelope.payload = await self._run()
            except Exception as exc:  # any failure is this run's failure, never the flow's
                mark_failed(envelope, self.name, exc)
                outcome.failed.append(envelope)
                continue
            if not envelope.payload["passed"] and self._config.on_below_threshold != "pass":
                accuracy, threshold = envelope.payload["accuracy"], envelope.payload["threshold"]
                shown = floor_percent(accuracy, threshold)  # never rounded up to a pass
                reason = f"accuracy {shown}% is below the threshold {threshold:g}%"
                mark_failed(envelope, self.name, PermanentError(reason))
                outcome.failed.append(envelope)
                continue
            outcome.passed.append(envelope)
        return outcome

    async def _run(self) -> dict[str, object]:
        project = await anyio.to_thread.run_sync(_project_at, self._root)
        config = await anyio.to_thread.run_sync(
            load_reconciliation, self._root / self._config.config, project
        )
        report = await reconcile_async(
            config, project_dir=self._root, examples=self._config.examples
        )
        summary: dict[str, object] = report.summary()
        summary["report"] = None
        if self._config.output is not None:
            now = datetime.now(UTC)
            relative = self._config.output.replace("{date}", now.strftime("%Y-%m-%d"))
            relative = relative.replace("{time}", now.strftime("%H%M%S"))
            path = confine(self._root, relative, what="output")
            fmt = format_for(path, self._config.format)
            await anyio.to_thread.run_sync(write_report, report, path, fmt)
            summary["report"] = relative
        return summary


SPEC = ComponentSpec(
    kind="step",
    name="reconcile",
    config=ReconcileStepConfig,
    factory=ReconcileStep,
    summary="Compare a source and a target by key (a reconciliation file) on every message.",
    description=(
        "Runs the reconciliation described in `config` (see the reconciliation docs) each time"
        " a message arrives, usually from a `schedule` source, optionally writes the report"
        " (Markdown, HTML or JSON) to `output`, and replaces the payload with a summary:"
        " the counts (`source_records`, `matched`, `equal`, `missing_in_target`,"
        " `extra_in_target`, `duplicate_source_keys`, `duplicate_target_keys`,"
        " `field_mismatches`, ...), `accuracy`, `threshold`, `passed` and `report`.\n\n"
        "Below the threshold the message is dead-lettered with the accuracy as reason"
        " (`on_below_threshold: pass` sends the summary on instead, e.g. to a chat webhook)."
        " A side that cannot be read fails the message with the reader's error."
    ),
    examples=[
        'reconcile: {config: reconcile/orders.yaml, output: "reports/orders-{date}.html"}',
        "reconcile:\n  config: reconcile/orders.yaml\n  output: reports/orders.json\n"
        "  on_below_threshold: pass",
    ],
    shorthand="config",
    status="beta",
)
