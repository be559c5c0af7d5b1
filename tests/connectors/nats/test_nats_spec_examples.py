"""Every example of the nats source and sink specs builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from dovetail.connectors.nats import sink, source
from dovetail.plugins.spec import ComponentSpec
from dovetail.testing.components import build_component

EXAMPLES = [(spec, example) for spec in (source.SPEC, sink.SPEC) for example in spec.examples]


@pytest.mark.parametrize(("spec", "snippet"), EXAMPLES)
def test_spec_examples_build(spec: ComponentSpec, snippet: str, tmp_path: Path) -> None:
    component = build_component(spec.kind, snippet, tmp_path)
    assert type(component).__name__ in ("NatsSource", "NatsSink")
    assert spec.extra == "nats" and spec.modules == ("nats",)
