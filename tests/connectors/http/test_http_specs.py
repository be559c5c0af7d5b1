"""Every example in the HTTP and schedule component specs builds through the registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from dovetail.connectors.http import sink, source
from dovetail.connectors.schedule import source as schedule
from dovetail.plugins.spec import ComponentSpec
from dovetail.testing.components import build_component

EXAMPLES = [
    (spec, example) for spec in (sink.SPEC, source.SPEC, schedule.SPEC) for example in spec.examples
]


@pytest.mark.parametrize(("spec", "example"), EXAMPLES)
def test_spec_examples_build(spec: ComponentSpec, example: str, tmp_path: Path) -> None:
    component = build_component(spec.kind, example, tmp_path, once=True)
    assert type(component).__module__ == spec.factory.__module__


def test_every_config_field_is_documented() -> None:
    for spec in (sink.SPEC, source.SPEC, schedule.SPEC):
        schema = spec.config.model_json_schema()
        for name, field in schema["properties"].items():
            assert field.get("description"), f"{spec.name}.{name} has no description"
