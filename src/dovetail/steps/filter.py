"""``filter``: keep messages for which a JSONata condition is true; drop the rest."""

from __future__ import annotations

from typing import Any

from dovetail.config.fields import JsonataExpr
from dovetail.core.envelope import Envelope
from dovetail.core.steps import DROP, MessageStep
from dovetail.mapping.jsonata import compile_expression
from dovetail.plugins.spec import ComponentConfig, ComponentSpec


class FilterConfig(ComponentConfig):
    condition: JsonataExpr
    """JSONata boolean over the payload; messages where it is not true are filtered out."""


class FilterStep(MessageStep):
    """Keeps a message when ``condition`` evaluates truthy; filtered messages are acked."""

    name = "filter"

    def __init__(self, config: FilterConfig) -> None:
        self._condition = compile_expression(config.condition)

    def apply(self, envelope: Envelope) -> Any:
        return envelope.payload if self._condition.evaluate(envelope.payload) else DROP


SPEC = ComponentSpec(
    kind="step",
    name="filter",
    config=FilterConfig,
    factory=lambda config, context: FilterStep(config),
    summary="Keep messages that match a JSONata condition; filter out (and ack) the rest.",
    description=(
        "The condition is evaluated on each payload. Messages for which it is not true are"
        " settled as *filtered*: acknowledged to the source, journaled, not delivered."
        " A bare string is the condition: `filter: total > 0`."
    ),
    examples=["filter: total > 0", "filter: {condition: \"status in ['paid', 'shipped']\"}"],
    shorthand="condition",
)
