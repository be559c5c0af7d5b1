"""Flow supervision: one flow's crash never takes the other flows of a process down.

``dovetail run a b`` runs each flow under a ``FlowSupervisor``. When a flow's source, store or
sink raises unexpectedly, its runner stops (its unsettled messages stay unacknowledged, so they
are read again) and the supervisor:

- in a continuous run, logs the error and starts the flow again after a backoff (1 s, doubling
  up to 60 s; back to 1 s once a run of the flow lasted a minute), counting the restarts;
- with ``--once``, or when the flow stopped on purpose (``dead_letter: false`` halted it, its
  configuration is wrong), records the error and leaves the flow stopped.

Either way the other flows keep running, and the flow's ``RunSummary`` carries ``restarts`` and
the last ``error``, so the run summary and the exit code show that a flow failed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import anyio
import structlog

from dovetail.config.model import Flow
from dovetail.errors import ConfigError, DovetailError
from dovetail.runtime.pipeline import build_pipeline
from dovetail.runtime.runner import FlowHalted, FlowRunner, ProgressFn, RunSummary
from dovetail.store.base import Store

log = structlog.get_logger("dovetail.supervisor")


@dataclass(frozen=True)
class RestartBackoff:
    """How long a crashed flow waits before it is started again."""

    initial: float = 1.0
    maximum: float = 60.0
    healthy_after: float = 60.0
    """A run that lasted this long resets the wait to ``initial``."""

    def next_wait(self, previous: float | None, ran_for: float) -> float:
        """The wait before the next start, given the previous wait and how long the run lasted."""
        if previous is None or ran_for >= self.healthy_after:
            return self.initial
        return min(previous * 2, self.maximum)


class FlowSupervisor:
    """Runs one flow until it finishes or is stopped, restarting it after a crash.

    ``run`` never raises for the flow's own failure (only cancellation passes through); it
    returns the flow's summary, summed over every start, with ``restarts`` and ``error`` set.
    """

    def __init__(
        self,
        flow: Flow,
        *,
        store: Store,
        once: bool,
        on_progress: ProgressFn | None = None,
        backoff: RestartBackoff = RestartBackoff(),
    ) -> None:
        self.flow = flow
        self.summary = RunSummary(flow=flow.name)
        self._store = store
        self._once = once
        self._on_progress = on_progress
        self._backoff = backoff
        self._runner: FlowRunner | None = None
        self._waiting: anyio.CancelScope | None = None
        self._stopping = False

    def stop(self) -> None:
        """Drain the running flow (``FlowRunner.stop``) and start it no more."""
        self._stopping = True
        if self._runner is not None:
            self._runner.stop()
        if self._waiting is not None:
            self._waiting.cancel()

    async def run(self) -> RunSummary:
        """Run the flow, restarting it after crashes as the module docstring says."""
        wait: float | None = None
        while not self._stopping:
            began = time.monotonic()
            error, restartable = await self._run_once()
            if error is None:
                break
            self.summary.error = error
            if self._once or self._stopping or not restartable:
                break
            wait = self._backoff.next_wait(wait, time.monotonic() - began)
            self.summary.restarts += 1
            log.warning(
                "flow restarting after a crash",
                flow=self.flow.name,
                in_seconds=wait,
                restarts=self.summary.restarts,
            )
            with anyio.CancelScope() as scope:
                self._waiting = scope
                await anyio.sleep(wait)
            self._waiting = None
        return self.summary

    async def _run_once(self) -> tuple[str | None, bool]:
        """One start of the flow: what went wrong (``None`` when it finished), and whether
        starting it again may help."""
        runner: FlowRunner | None = None
        try:
            pipeline = build_pipeline(self.flow, self._store, once=self._once)
            runner = FlowRunner(pipeline, on_progress=self._on_progress)
            self._runner = runner
            if self._stopping:
                runner.stop()
            await runner.run()
            return None, False
        except (FlowHalted, ConfigError) as exc:
            log.error("flow stopped", flow=self.flow.name, error=str(exc))
            return str(exc), False
        except Exception as exc:
            log.error(
                "flow crashed; its unsettled messages stay unacknowledged",
                flow=self.flow.name,
                error=describe(exc),
                exc_info=None if isinstance(exc, DovetailError) else exc,  # a bug: where
            )
            return describe(exc), True
        finally:
            self._runner = None
            if runner is not None:  # what a crashed run settled before the crash counts too
                absorb(self.summary, runner.summary)


def describe(exc: BaseException) -> str:
    """An error as one line: its class and message."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def absorb(total: RunSummary, part: RunSummary) -> None:
    """Add the counts of one start of a flow to its running total."""
    total.received += part.received
    total.delivered.update(part.delivered)
    total.duplicates += part.duplicates
    total.filtered += part.filtered
    total.dead_lettered += part.dead_lettered
    total.retries += part.retries
    total.parked += part.parked
    total.redriven += part.redriven
    total.reasons.update(part.reasons)
    total.seconds += part.seconds
