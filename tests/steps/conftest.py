"""Run a built step over payloads as the runner would, recording which sources were acked."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from dovetail.core.ack import Settlement
from dovetail.core.component import StepOutcome
from dovetail.core.envelope import Envelope
from dovetail.testing.components import build_component


@dataclass
class StepRun:
    """The outcome of one batch, and the indexes of the source messages acked so far."""

    outcome: StepOutcome
    inputs: list[Envelope]
    acked: list[int] = field(default_factory=list)

    @property
    def payloads(self) -> list[Any]:
        return [envelope.payload for envelope in self.outcome.passed]

    @property
    def reasons(self) -> list[str]:
        return [e.failure.reason for e in self.outcome.failed if e.failure is not None]


def run_step(step: Any, payloads: Sequence[Any], *, settle: bool = True) -> StepRun:
    """Open ``step``, process one batch and (like the runner) settle every outcome."""

    async def go() -> StepRun:
        acked: list[int] = []

        def ack_for(index: int) -> Callable[[], Any]:
            async def ack() -> None:
                acked.append(index)

            return ack

        inputs = [
            Envelope(payload=payload, settlement=Settlement(ack_for(i)))
            for i, payload in enumerate(payloads)
        ]
        opener = getattr(step, "open", None)
        if opener is not None:
            await opener()
        outcome = await step.process(inputs)
        if settle:
            for envelope in [*outcome.passed, *outcome.dropped, *outcome.failed]:
                await envelope.settlement.settle()
        return StepRun(outcome=outcome, inputs=inputs, acked=acked)

    return anyio.run(go)


@pytest.fixture
def step_of(tmp_path: Path) -> Callable[[str], Any]:
    """Build a step from a YAML snippet in the ``tmp_path`` project."""
    return lambda snippet: build_component("step", snippet, tmp_path)


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a project file (creating folders) and return its path."""

    def write_file(relative: str, text: str) -> Path:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write_file


@pytest.fixture
def run() -> Callable[..., StepRun]:
    """``run(step, payloads)``: process one batch through a built step (see ``run_step``)."""
    return run_step
