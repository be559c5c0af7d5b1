"""Fixtures for the file connector tests: a project folder, a real SQLite store, a drain loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dovetail.core.component import BuildContext
from dovetail.core.envelope import Envelope
from dovetail.plugins.registry import default_registry
from dovetail.store.sqlite import SqliteStore
from dovetail.testing.components import build_component


class FileKit:
    """Builds file sources and sinks in one project folder and drives them like the runner."""

    def __init__(self, project: Path) -> None:
        self.project = project
        self.store_path = project / ".dovetail" / "state.db"

    def write(self, relative: str, content: str | bytes) -> Path:
        """Create a file under the project (parents included)."""
        path = self.project / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="")
        return path

    def store(self) -> SqliteStore:
        """A store on the project's state file (unopened); reopening one simulates a restart."""
        return SqliteStore(self.store_path)

    def source(self, snippet: str, *, store: Any = None, once: bool = True) -> Any:
        return build_component("source", snippet, self.project, store=store, once=once)

    def source_with_batch_size(
        self, raw: dict[str, Any], batch_size: int, store: Any = None
    ) -> Any:
        """Build through the registry with runtime options (``build_component`` has none)."""
        spec = default_registry().get("source", "file")
        assert spec is not None
        config = spec.config.model_validate(raw, context={"project_dir": self.project})
        context = BuildContext(
            flow="test-flow",
            flow_version="1.0.0",
            project_dir=self.project,
            store=store,
            once=True,
            options={"batch_size": batch_size},
        )
        return spec.factory(config, context)

    def sink(self, snippet: str) -> Any:
        return build_component("sink", snippet, self.project)

    async def drain(self, source: Any) -> list[list[Envelope]]:
        """Open ``source`` and run it to the end (``once``); return the emitted batches."""
        batches: list[list[Envelope]] = []

        async def emit(batch: list[Envelope]) -> None:
            batches.append(list(batch))

        await source.open()
        await source.run(emit)
        return batches

    async def read(self, source: Any) -> list[Envelope]:
        """Like ``drain`` but flattened into one list of envelopes."""
        return [envelope for batch in await self.drain(source) for envelope in batch]

    @staticmethod
    async def settle(envelopes: list[Envelope]) -> None:
        """Settle each envelope as the runner does once it is delivered or dead-lettered."""
        for envelope in envelopes:
            await envelope.settlement.settle()


@pytest.fixture
def kit(tmp_path: Path) -> FileKit:
    return FileKit(tmp_path)
