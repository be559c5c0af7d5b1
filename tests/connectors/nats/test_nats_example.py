"""The NATS example project lints and passes its own cases; every spec example builds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dovetail.cli.app import app
from dovetail.connectors.nats import sink, source
from dovetail.plugins.spec import ComponentSpec
from dovetail.testing.components import build_component

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "nats"
runner = CliRunner()


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the example project (its runs write nothing into the repository)."""
    target = tmp_path / "nats"
    shutil.copytree(EXAMPLE, target)
    monkeypatch.chdir(target)
    return target


def test_the_example_project_lints_clean(example: Path) -> None:
    result = runner.invoke(app, ["lint"])
    assert result.exit_code == 0, result.output
    assert "2 flow(s) OK" in result.output


def test_the_example_project_passes_its_cases(example: Path) -> None:
    result = runner.invoke(app, ["test"])
    assert result.exit_code == 0, result.output
    assert "3 passed, 0 failed" in result.output


EXAMPLES = [(spec, example) for spec in (source.SPEC, sink.SPEC) for example in spec.examples]


@pytest.mark.parametrize(("spec", "snippet"), EXAMPLES)
def test_spec_examples_build(spec: ComponentSpec, snippet: str, tmp_path: Path) -> None:
    component = build_component(spec.kind, snippet, tmp_path)
    assert type(component).__name__ in ("NatsSource", "NatsSink")
    assert spec.extra == "nats" and spec.modules == ("nats",)
