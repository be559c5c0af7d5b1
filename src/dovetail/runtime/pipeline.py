"""Build a flow's components (source, steps, sinks) from a validated ``Flow``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dovetail.config.model import Flow
from dovetail.contracts.validate import guard_sink
from dovetail.core.component import BuildContext, Sink, Source, Step
from dovetail.delivery.circuit import CircuitBreaker
from dovetail.delivery.clock import Clock
from dovetail.delivery.parking import ParkingLot
from dovetail.delivery.retry import RetryPolicy
from dovetail.delivery.sink_delivery import SinkDelivery
from dovetail.mapping.jsonata import Expression, compile_expression
from dovetail.store.base import Store


@dataclass
class Pipeline:
    """The built components of one flow."""

    flow: Flow
    source: Source
    steps: list[Step]
    sinks: dict[str, SinkDelivery]
    idempotency_key: Expression | None
    context: BuildContext
    ordering_key: Expression | None = None
    parking: ParkingLot | None = None
    """Where long retry waits are parked; ``None`` without a store or with ``park_after: null``."""
    extra_components: list[Any] = field(default_factory=list)
    clock: Clock | None = None
    """Time for the runner's own waits (``None``: the system clock)."""

    async def open(self) -> None:
        """Open sinks first, then the source, so nothing is read before it can be delivered."""
        for delivery in self.sinks.values():
            await delivery.sink.open()
        for step in self.steps:
            opener = getattr(step, "open", None)
            if opener is not None:
                await opener()
        await self.source.open()

    async def close(self) -> None:
        """Close in reverse order; every component gets its close even if one fails."""
        errors: list[BaseException] = []
        closers = [self.source.close]
        closers += [c for c in (getattr(s, "close", None) for s in self.steps) if c is not None]
        closers += [d.sink.close for d in self.sinks.values()]
        for close in closers:
            try:
                await close()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


def build_pipeline(
    flow: Flow,
    store: Store | None,
    *,
    once: bool,
    clock: Clock | None = None,
    source: Source | None = None,
    sinks: dict[str, Sink] | None = None,
) -> Pipeline:
    """Build every component of ``flow``; ``source``/``sinks`` replace the declared ones."""
    runtime = flow.spec.runtime
    context = BuildContext(
        flow=flow.name,
        flow_version=flow.version,
        project_dir=flow.project_dir,
        store=store,
        once=once,
        options={"batch_size": runtime.batch_size},
    )
    built_source: Source = source or flow.source.spec.factory(flow.source.config, context)
    steps: list[Step] = []
    for ref in flow.steps:
        step = ref.spec.factory(ref.config, context)
        step.name = ref.spec.name
        steps.append(step)
    retry = flow.spec.delivery.retry
    policy = RetryPolicy(
        attempts=retry.attempts, initial=retry.initial, max=retry.max, multiplier=retry.multiplier
    )
    parking = None
    if store is not None and retry.park_after is not None:
        parking = ParkingLot(store, flow.name, retry.park_after)
    deliveries: dict[str, SinkDelivery] = {}
    for name, ref in flow.sinks.items():
        sink = sinks[name] if sinks and name in sinks else ref.spec.factory(ref.config, context)
        sink = guard_sink(sink, ref.config, flow.project_dir)
        deliveries[name] = SinkDelivery(
            name,
            sink,
            policy,
            flow=flow.name,
            store=store,
            rate_limit=getattr(ref.config, "rate_limit", None),
            clock=clock,
            breaker=_breaker(flow),
            ordered=flow.spec.delivery.ordering is not None,
            parking=parking,
        )
    key = flow.spec.delivery.idempotency_key
    ordering = flow.spec.delivery.ordering
    return Pipeline(
        flow=flow,
        source=built_source,
        steps=steps,
        sinks=deliveries,
        idempotency_key=compile_expression(key) if key else None,
        ordering_key=compile_expression(ordering.key) if ordering else None,
        parking=parking,
        context=context,
        clock=clock,
    )


def _breaker(flow: Flow) -> CircuitBreaker | None:
    spec = flow.spec.delivery.circuit_breaker
    return None if spec is None else CircuitBreaker(threshold=spec.failures, reset_after=spec.reset)
