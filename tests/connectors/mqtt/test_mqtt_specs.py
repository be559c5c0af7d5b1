"""The mqtt source and sink specs: registered, documented, and their examples are valid configs."""

from __future__ import annotations

from typing import Literal

import pytest
from ruamel.yaml import YAML

from dovetail.plugins.registry import default_registry


@pytest.mark.parametrize("kind", ["source", "sink"])
def test_the_mqtt_examples_are_valid_configs(kind: Literal["source", "sink"]) -> None:
    spec = default_registry().get(kind, "mqtt")
    assert spec is not None
    assert spec.extra == "mqtt"
    assert spec.examples
    for example in spec.examples:
        ((name, raw),) = YAML(typ="safe").load(example).items()
        assert name == "mqtt"
        spec.config.model_validate(raw)
