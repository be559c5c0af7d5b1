"""File connectors stay inside the project directory: no ``..``, no symlink escape."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from dovetail.core.envelope import Envelope
from dovetail.safety.paths import PathEscapeError


@pytest.mark.parametrize(
    "snippet",
    [
        "file: {path: ../elsewhere/*.csv}",
        "file: {path: /etc/*.csv}",
        "file: {path: inbox/../../x/*.csv}",
        "file: {path: inbox/*.csv, after: {move_to: ../archive}}",
        "file: {path: inbox/*.csv, after: {on_error_move_to: /tmp/error}}",
    ],
)
def test_source_paths_leaving_the_project_are_refused_at_build_time(kit: Any, snippet: str) -> None:
    with pytest.raises(ValidationError, match=r"must (not contain '\.\.'|be relative)"):
        kit.source(snippet)


@pytest.mark.parametrize(
    "snippet",
    [
        "file: {path: ../outbox/orders.jsonl}",
        "file: {path: /tmp/orders, filename: id}",
    ],
)
def test_sink_paths_leaving_the_project_are_refused_at_build_time(kit: Any, snippet: str) -> None:
    with pytest.raises(ValidationError, match=r"must (not contain '\.\.'|be relative)"):
        kit.sink(snippet)


def test_source_folder_that_is_a_symlink_out_of_the_project_is_refused(
    kit: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "a.csv").write_text("a\n1\n")
    (kit.project / "inbox").symlink_to(outside, target_is_directory=True)
    source = kit.source("file: {path: inbox/*.csv}")
    with pytest.raises(PathEscapeError, match="outside"):
        asyncio.run(source.open())


def test_after_folder_that_is_a_symlink_out_of_the_project_is_refused(
    kit: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (kit.project / "archive").symlink_to(outside, target_is_directory=True)
    source = kit.source("file: {path: inbox/*.csv, after: {move_to: archive}}")
    with pytest.raises(PathEscapeError, match=r"after\.move_to"):
        asyncio.run(source.open())


def test_symlinked_file_pointing_out_is_not_read_and_goes_to_the_error_folder(
    kit: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside") / "secret.csv"
    outside.write_text("secret\nTOP-SECRET\n")
    kit.write("inbox/ok.csv", "a\n1\n")
    (kit.project / "inbox/link.csv").symlink_to(outside)

    async def scenario() -> list[Envelope]:
        source = kit.source("file: {path: inbox/*.csv, after: {on_error_move_to: error}}")
        envelopes: list[Envelope] = await kit.read(source)
        await kit.settle(envelopes)
        await source.close()
        return envelopes

    link, ok = asyncio.run(scenario())
    assert ok.payload == {"a": "1"}
    assert link.failure is not None
    assert "symlink to a path outside the project" in link.failure.reason
    assert "TOP-SECRET" not in str(link.payload)
    assert (kit.project / "error/link.csv").is_symlink()
    assert outside.exists()


def test_symlinked_file_inside_the_project_is_read(kit: Any) -> None:
    kit.write("data/real.csv", "a\n1\n")
    (kit.project / "inbox").mkdir()
    (kit.project / "inbox/link.csv").symlink_to(kit.project / "data/real.csv")
    envelopes = asyncio.run(kit.read(kit.source("file: {path: inbox/*.csv}")))
    assert [e.payload for e in envelopes] == [{"a": "1"}]


def test_sink_folder_that_is_a_symlink_out_of_the_project_is_refused(
    kit: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside: Path = tmp_path_factory.mktemp("outside")
    (kit.project / "outbox").symlink_to(outside, target_is_directory=True)
    sink = kit.sink("file: {path: outbox/orders.jsonl}")
    with pytest.raises(PathEscapeError, match="outside"):
        asyncio.run(sink.open())
