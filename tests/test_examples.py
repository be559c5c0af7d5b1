"""Every example project under examples/ lints clean and passes its own test cases."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dovetail.cli.app import app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PROJECTS = sorted(p.parent.name for p in EXAMPLES.glob("*/dovetail.yaml"))
runner = CliRunner()


def test_every_broker_has_an_example_project() -> None:
    assert {"amqp", "mqtt", "nats", "redis"} <= set(PROJECTS)


@pytest.fixture(params=PROJECTS)
def example(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A copy of one example project (running it writes .dovetail/ and data/)."""
    target = tmp_path / request.param
    shutil.copytree(EXAMPLES / request.param, target)
    monkeypatch.chdir(target)
    return target


def test_the_example_lints_clean_and_passes_its_cases(example: Path) -> None:
    flows = len(list((example / "flows").glob("*.yaml")))
    linted = runner.invoke(app, ["lint"])
    assert linted.exit_code == 0, linted.output
    assert f"{flows} flow(s) OK" in linted.output
    tested = runner.invoke(app, ["test"])
    assert tested.exit_code == 0, tested.output
    found = re.search(r"(\d+) passed, 0 failed", tested.output)
    assert found is not None and int(found.group(1)) >= 2, tested.output
