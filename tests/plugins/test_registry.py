"""Components register by name; third parties plug in through the entry point."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dovetail.plugins.registry import ENTRY_POINT_GROUP, Registry, default_registry, specs_of
from dovetail.plugins.spec import ComponentConfig, ComponentSpec

PLUGIN = '''
from dovetail.plugins.spec import ComponentConfig, ComponentSpec


class UpperConfig(ComponentConfig):
    field: str
    """Which field to upper-case."""


SPEC = ComponentSpec(
    kind="step", name="shout", config=UpperConfig,
    factory=lambda config, context: None, summary="Upper-cases a field.",
)
'''


def test_builtins_are_registered_by_yaml_key() -> None:
    registry = default_registry()
    assert {"file", "http", "schedule"} <= set(registry.names("source"))
    assert {"validate", "map", "lookup", "filter", "route", "split", "python"} <= set(
        registry.names("step")
    )
    assert {"file", "http", "sql"} <= set(registry.names("sink"))


def test_a_name_registered_twice_is_an_error() -> None:
    registry = Registry()
    spec = ComponentSpec(
        kind="step", name="x", config=ComponentConfig, factory=lambda c, ctx: None, summary="x"
    )
    registry.register(spec)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(spec)


def test_suggestions_for_typos() -> None:
    registry = default_registry()
    assert registry.suggest("step", "valdate") == "validate"
    assert registry.suggest("step", "zzzz") is None


def test_entry_point_plugins_are_discovered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shout_plugin.py").write_text(PLUGIN)
    dist = tmp_path / "shout_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shout-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nshout = shout_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    default_registry.cache_clear()
    try:
        registry = default_registry()
        spec = registry.get("step", "shout")
        assert spec is not None and spec.summary == "Upper-cases a field."
    finally:
        default_registry.cache_clear()
        sys.modules.pop("shout_plugin", None)


def test_specs_of_accepts_a_callable() -> None:
    spec = ComponentSpec(
        kind="sink", name="y", config=ComponentConfig, factory=lambda c, ctx: None, summary="y"
    )
    assert list(specs_of(lambda: spec)) == [spec]
    assert list(specs_of(lambda: [spec])) == [spec]
