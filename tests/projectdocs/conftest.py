"""A scaffolded example project (``dovetail init``) to document."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dovetail.cli.app import app


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example project of ``dovetail init``, the current folder."""
    target = tmp_path / "proj"
    result = CliRunner().invoke(app, ["init", str(target)])
    assert result.exit_code == 0, result.output
    monkeypatch.chdir(target)
    return target
