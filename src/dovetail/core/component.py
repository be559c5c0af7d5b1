"""Source, Step and Sink protocols: the contracts every component implements.

Lifecycle: the pipeline builds each component from its validated config model with a
``BuildContext``; the runner calls ``open()`` before the first message and ``close()`` after
the last, inside the flow's task group.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from dovetail.core.envelope import Envelope

if TYPE_CHECKING:
    from dovetail.store.base import Store

Emit = Callable[[list[Envelope]], Awaitable[None]]
"""Hands a batch to the flow; awaiting it is the back-pressure (blocks while the queue is full)."""


@dataclass(slots=True)
class BuildContext:
    """What a component may know about the flow it is built for."""

    flow: str
    flow_version: str
    project_dir: Path
    store: Store | None = None
    once: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def resolve(self, relative: str | Path) -> Path:
        """A path from the flow file, resolved against the project directory."""
        path = Path(relative)
        return path if path.is_absolute() else self.project_dir / path


@runtime_checkable
class Source(Protocol):
    """Produces batches of envelopes.

    Ack contract: every envelope carries a ``Settlement`` whose ack callback the source
    supplies; the runner calls it only after the message is delivered to every sink, filtered
    out, or durably dead-lettered. ``commit()`` is awaited after each settled batch so the
    source can persist progress (a file checkpoint) once per batch rather than per message.
    """

    async def open(self) -> None: ...

    async def run(self, emit: Emit) -> None:
        """Read input and ``await emit(batch)``; return when input is exhausted (``once``) or
        when cancelled."""
        ...

    async def commit(self) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class Step(Protocol):
    """Transforms a batch. Never raises for a bad message: it sets ``envelope.failure``.

    Returns the messages that go on (zero, one or several per input; derived messages share
    their parent's settlement via ``Envelope.derive``) and the messages that are finished
    here (filtered out, or failed: those carry ``failure``).
    """

    name: str

    async def process(self, batch: Sequence[Envelope]) -> StepOutcome: ...


@dataclass(slots=True)
class StepOutcome:
    """What a step did with a batch."""

    passed: list[Envelope] = field(default_factory=list)
    dropped: list[Envelope] = field(default_factory=list)
    failed: list[Envelope] = field(default_factory=list)


@runtime_checkable
class Sink(Protocol):
    """Delivers a batch to a target system.

    ``write`` returns, per input envelope and in the same order, ``None`` when the target
    confirmed it, or the exception that failed it (a ``TransientError`` to retry or a
    ``PermanentError`` to dead-letter). Raising means the whole batch failed with that error.
    Writes must be idempotent where an upsert or key makes that possible.
    """

    name: str

    async def open(self) -> None: ...

    async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ReadProgress:
    """How much of its known input a source has read: ``done`` of ``total`` bytes."""

    done: int
    total: int


@runtime_checkable
class MeasuredSource(Protocol):
    """A source that knows the size of its input (the ``file`` source: the files' sizes).

    ``read_progress()`` is called from the event loop (by progress displays), never blocks,
    and returns None while the size is not known yet.
    """

    def read_progress(self) -> ReadProgress | None: ...
