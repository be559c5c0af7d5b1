"""``route``: content-based routing of each message to one or more named sinks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field, field_validator

from dovetail.config.fields import JsonataExpr
from dovetail.core.component import StepOutcome
from dovetail.core.envelope import Envelope
from dovetail.core.steps import mark_failed
from dovetail.errors import PermanentError
from dovetail.mapping.jsonata import Expression, compile_expression
from dovetail.plugins.spec import ComponentConfig, ComponentSpec

NO_MATCH_REASON = "route: no route matched"


class Route(ComponentConfig):
    when: JsonataExpr
    """JSONata condition over the payload; the route applies when it is true."""

    to: list[str] = Field(min_length=1)
    """Names of the flow's sinks (under ``sinks:``) that get the message."""

    @field_validator("to", mode="before")
    @classmethod
    def _single_sink(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


class RouteConfig(ComponentConfig):
    routes: list[Route] = Field(min_length=1)
    """Routes in order: ``{when: JSONata, to: [sink, ...]}``."""

    otherwise: list[str] | Literal["dead_letter", "drop"] = "dead_letter"
    """Where a message that matches no route goes: a list of sinks, ``dead_letter``
    (reason ``route: no route matched``) or ``drop`` (filtered out and acked)."""

    mode: Literal["first", "all"] = "first"
    """``first``: the first matching route decides; ``all``: every matching route's sinks."""

    @field_validator("otherwise", mode="before")
    @classmethod
    def _sink_list(cls, value: object) -> object:
        if isinstance(value, str) and value not in ("dead_letter", "drop"):
            return [value]
        return value

    def targets(self) -> set[str]:
        """Every sink name this step mentions, for checking against the flow's sinks."""
        names = {name for route in self.routes for name in route.to}
        if isinstance(self.otherwise, list):
            names.update(self.otherwise)
        return names


class RouteStep:
    """Sets ``envelope.routes`` to the chosen sink names; the runner delivers to those.

    A condition that fails to evaluate fails that message (``MappingFailed``). A message
    sent to several sinks is acked once every one of them has settled it.
    """

    name = "route"

    def __init__(self, config: RouteConfig) -> None:
        self._routes: list[tuple[Expression, tuple[str, ...]]] = [
            (compile_expression(route.when), tuple(route.to)) for route in config.routes
        ]
        self._all = config.mode == "all"
        otherwise = config.otherwise
        self._otherwise = tuple(otherwise) if isinstance(otherwise, list) else otherwise

    def choose(self, envelope: Envelope) -> tuple[str, ...]:
        """The sinks for one message; empty when no route matches."""
        chosen: list[str] = []
        for condition, sinks in self._routes:
            if condition.evaluate(envelope.payload):
                if not self._all:
                    return sinks
                chosen.extend(s for s in sinks if s not in chosen)
        return tuple(chosen)

    async def process(self, batch: Sequence[Envelope]) -> StepOutcome:
        outcome = StepOutcome()
        for envelope in batch:
            try:
                sinks = self.choose(envelope)
            except Exception as exc:  # a bad message becomes data, never unwinds the batch
                mark_failed(envelope, self.name, exc)
                outcome.failed.append(envelope)
                continue
            if not sinks:
                if self._otherwise == "drop":
                    outcome.dropped.append(envelope)
                    continue
                if self._otherwise == "dead_letter":
                    mark_failed(envelope, self.name, PermanentError(NO_MATCH_REASON))
                    outcome.failed.append(envelope)
                    continue
                sinks = self._otherwise
            envelope.routes = sinks
            outcome.passed.append(envelope)
        return outcome


SPEC = ComponentSpec(
    kind="step",
    name="route",
    config=RouteConfig,
    factory=lambda config, context: RouteStep(config),
    summary="Send each message to named sinks chosen by JSONata conditions (content-based router).",
    description=(
        "The flow declares its destinations under `sinks:`; each route names some of them."
        " With `mode: first` (default) the first route whose `when` is true decides; with"
        " `mode: all` the message goes to the sinks of every matching route (each sink once)."
        " A message that matches nothing goes to `otherwise`: a list of sinks, `dead_letter`"
        " (default; reason `route: no route matched`) or `drop` (filtered out and acked)."
        " A message sent to several sinks is acked to its source only when every sink has"
        " settled it. `dovetail lint` checks every named sink is declared. `to` may be a"
        " single name instead of a list."
    ),
    examples=[
        "route:\n  routes:\n    - {when: \"country = 'DE'\", to: [erp_de]}\n"
        "    - {when: \"country in ['FR', 'BE']\", to: [erp_fr]}\n  otherwise: [erp_intl]",
        "route:\n  mode: all\n  routes:\n    - {when: total > 10000, to: [approvals]}\n"
        "    - {when: 'true', to: [erp, archive]}",
        "route:\n  routes:\n    - {when: type = 'invoice', to: invoices}\n  otherwise: drop",
    ],
)
