"""Every built-in step's spec: its examples are valid configs, its docs are filled in."""

from __future__ import annotations

import pytest
from ruamel.yaml import YAML

from dovetail.plugins.registry import default_registry

STEPS = ["validate", "map", "lookup", "route", "split", "python"]


@pytest.mark.parametrize("name", STEPS)
def test_examples_are_valid_configs(name):
    spec = default_registry().get("step", name)
    assert spec is not None
    assert spec.summary and spec.description and spec.examples
    for example in spec.examples:
        data = YAML(typ="safe").load(example)
        assert list(data) == [name]
        raw = data[name]
        if not isinstance(raw, dict):
            assert spec.shorthand is not None, f"{name} example uses a shorthand it lacks"
            raw = {spec.shorthand: raw}
        spec.config.model_validate(raw)


@pytest.mark.parametrize("name", STEPS)
def test_every_config_field_is_documented(name):
    spec = default_registry().get("step", name)
    assert spec is not None
    schema = spec.config.model_json_schema()
    for field, info in schema["properties"].items():
        assert info.get("description"), f"{name}.{field} has no description"
