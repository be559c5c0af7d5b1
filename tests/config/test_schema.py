"""The generated JSON Schema accepts real flows and rejects broken ones."""

from __future__ import annotations

from pathlib import Path

import jsonschema_rs
import pytest
from ruamel.yaml import YAML

from dovetail.config.schema import flow_schema

SCAFFOLD = Path(__file__).parents[2] / "src/dovetail/cli/scaffold/project/flows"


@pytest.fixture(scope="module")
def validator() -> jsonschema_rs.Draft202012Validator:
    return jsonschema_rs.Draft202012Validator(flow_schema())


@pytest.mark.parametrize("path", sorted(SCAFFOLD.glob("*.yaml")), ids=lambda p: p.name)
def test_example_flows_validate(validator: jsonschema_rs.Draft202012Validator, path: Path) -> None:
    data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    errors = [e.message for e in validator.iter_errors(data)]
    assert errors == []


def test_unknown_component_and_keys_are_rejected(
    validator: jsonschema_rs.Draft202012Validator,
) -> None:
    base = {
        "flow": "a-b",
        "source": {"file": {"path": "x", "format": "csv"}},
        "sink": {"file": {"path": "o.jsonl"}},
    }
    assert validator.is_valid(base)
    assert not validator.is_valid({**base, "source": {"ftp": {}}})
    assert not validator.is_valid({**base, "source": {"file": {"path": "x", "formt": "csv"}}})
    assert not validator.is_valid({**base, "flow": "not/a/name"})  # kebab-case: a lint rule
    both = {**base, "sinks": {"x": base["sink"]}}
    assert not validator.is_valid(both)


def test_every_component_appears_in_the_schema() -> None:
    schema = flow_schema()
    from dovetail.plugins.registry import default_registry

    registry = default_registry()
    defs = schema["$defs"]
    for kind in ("source", "step", "sink"):
        for name in registry.names(kind):  # type: ignore[arg-type]
            assert f"{kind}.{name}" in defs
