"""ComponentSpec: the single source of a component's validation, docs and schema."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from dovetail.core.component import BuildContext

Kind = Literal["source", "step", "sink"]
Status = Literal["stable", "beta", "experimental"]


class ComponentConfig(BaseModel):
    """Base of every component config model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


@dataclass(frozen=True)
class ComponentSpec:
    """Describes one component: its YAML key, config model, factory and documentation.

    ``factory(config, context)`` builds the component; it may import optional libraries,
    which are named in ``extra`` so lint can print the install command when one is missing.
    ``modules`` lists the import names that extra provides.
    """

    kind: Kind
    name: str
    config: type[BaseModel]
    factory: Callable[[Any, BuildContext], Any]
    summary: str
    description: str = ""
    status: Status = "stable"
    examples: list[str] = field(default_factory=list)
    extra: str | None = None
    modules: tuple[str, ...] = ()
    shorthand: str | None = None
    """When set, a bare scalar config (``filter: total > 0``) fills this field."""
