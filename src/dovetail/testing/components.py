"""Build one component from a YAML snippet through the real registry (for tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from dovetail.core.component import BuildContext
from dovetail.plugins.registry import default_registry
from dovetail.plugins.spec import Kind
from dovetail.store.base import Store


def build_component(
    kind: Kind,
    snippet: str,
    project_dir: Path,
    *,
    store: Store | None = None,
    flow: str = "test-flow",
    once: bool = True,
) -> Any:
    """Build the component in ``snippet`` (``"filter: total > 0"``) as the runtime would."""
    data = YAML(typ="safe").load(snippet)
    if not isinstance(data, dict) or len(data) != 1:
        raise ValueError("snippet must be a mapping with exactly one component key")
    ((name, raw),) = data.items()
    spec = default_registry().get(kind, name)
    if spec is None:
        raise KeyError(f"no {kind} named {name!r}")
    if spec.shorthand is not None and not isinstance(raw, dict):
        raw = {spec.shorthand: raw}
    config = spec.config.model_validate(raw or {}, context={"project_dir": project_dir})
    context = BuildContext(
        flow=flow, flow_version="1.0.0", project_dir=project_dir, store=store, once=once
    )
    return spec.factory(config, context)
