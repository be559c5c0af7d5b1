"""The MQTT example project passes lint and its offline test cases."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dovetail.cli.app import app

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "mqtt"
runner = CliRunner()


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the example (running it writes .dovetail/ and data/)."""
    target = tmp_path / "mqtt"
    shutil.copytree(EXAMPLE, target)
    monkeypatch.chdir(target)
    return target


def test_the_mqtt_example_lints_clean(example: Path) -> None:
    result = runner.invoke(app, ["lint"])
    assert result.exit_code == 0, result.output
    assert "2 flow(s) OK" in result.output


def test_the_mqtt_example_test_cases_pass(example: Path) -> None:
    result = runner.invoke(app, ["test"])
    assert result.exit_code == 0, result.output
    assert "4 passed, 0 failed" in result.output
