"""``split``: one message per element of an array in the payload (splitter)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from dovetail.config.fields import JsonataExpr
from dovetail.core.component import StepOutcome
from dovetail.core.envelope import Envelope
from dovetail.core.steps import mark_failed
from dovetail.errors import MappingFailed, PermanentError
from dovetail.mapping.jsonata import Expression, compile_expression
from dovetail.plugins.spec import ComponentConfig, ComponentSpec


class SplitConfig(ComponentConfig):
    path: JsonataExpr
    """JSONata path to the array to split (``items``, ``order.lines``); append ``[]`` to a
    filter expression so that a single match stays an array (``lines[qty > 0][]``)."""

    include: dict[str, JsonataExpr] = Field(default_factory=dict)
    """Fields evaluated on the parent and added to every child: ``{order_id: order_id}``.
    Children must then be objects; an included field replaces a child's own field."""


class SplitStep:
    """Replaces each message by its children; the parent's source message is acked when
    every child has settled (delivered, filtered or dead-lettered).

    Children are made with ``Envelope.derive`` (same correlation id, own message id, shared
    settlement). ``derive`` adds one outstanding part per child, so after deriving the
    children the step settles the parent's own part, exactly once. An empty array filters
    the message out; a path that does not give an array fails it (``PermanentError``).
    """

    name = "split"

    def __init__(self, config: SplitConfig) -> None:
        self._source = config.path
        self._path = compile_expression(config.path)
        self._include = [(key, compile_expression(expr)) for key, expr in config.include.items()]

    def children(self, payload: Any) -> list[Any]:
        """The child payloads of one message; raises ``PermanentError`` when there is no array."""
        items = self._path.evaluate(payload)
        if items is None:
            raise PermanentError(f"split: {self._source!r} is missing; expected an array")
        if not isinstance(items, list):
            raise PermanentError(f"split: {self._source!r} is {_kind(items)}, not an array")
        if not self._include:
            return [dict(item) if isinstance(item, dict) else item for item in items]
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise PermanentError(
                    f"split: include needs object elements, but element {index} of"
                    f" {self._source!r} is {_kind(item)}"
                )
        extra = {key: _included(key, expression, payload) for key, expression in self._include}
        return [{**item, **extra} for item in items]

    async def process(self, batch: Sequence[Envelope]) -> StepOutcome:
        """Replace each message by its children (acked when all of them settle)."""
        outcome = StepOutcome()
        for envelope in batch:
            try:
                children = self.children(envelope.payload)
            except Exception as exc:  # a bad message becomes data, never unwinds the batch
                mark_failed(envelope, self.name, exc)
                outcome.failed.append(envelope)
                continue
            if not children:
                outcome.dropped.append(envelope)
                continue
            outcome.passed.extend(envelope.derive(child) for child in children)
            await envelope.settlement.settle()
        return outcome


def _included(key: str, expression: Expression, payload: Any) -> Any:
    """The value of one ``include`` field; its failure names the field."""
    try:
        return expression.evaluate(payload)
    except MappingFailed as exc:
        raise MappingFailed(f"include field {key}: {exc.reason}", detail=exc.detail) from None


def _kind(value: Any) -> str:
    names = {dict: "an object", str: "a string", bool: "a boolean", list: "an array"}
    return names.get(type(value), f"a {type(value).__name__}")


SPEC = ComponentSpec(
    kind="step",
    name="split",
    config=SplitConfig,
    factory=lambda config, context: SplitStep(config),
    summary="Turn one message into one message per element of an array (splitter).",
    description=(
        "`path` is a JSONata path to an array in the payload; each element becomes a"
        " message of its own, with the parent's correlation id and headers. `include` copies"
        " fields of the parent into every child (children must then be objects). The"
        " source message is acknowledged only when every child has been delivered, filtered"
        " or dead-lettered; each child fails or succeeds on its own. An empty array filters"
        " the message out; a missing path or a value that is not an array dead-letters it."
        " A JSONata filter that matches a single element returns that element, not an"
        " array: append `[]` (`lines[qty > 0][]`). A bare string is the path: `split: items`."
    ),
    examples=[
        "split: items",
        "split: {path: order.lines, include: {order_id: order.id, currency: order.currency}}",
    ],
    shorthand="path",
)
