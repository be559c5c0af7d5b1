"""Flow observers: what the runner and the sink deliveries tell metrics, tracing and friends.

A ``FlowObserver`` is called once per batch at each stage (never once per message), with the
envelopes of that batch, so an observer that needs per-message detail (tracing) can take it
and one that only counts (metrics) pays ``len()``. With no observer attached the runner skips
every call: the engine's per-message cost does not change.

Observers come from two places: ``FlowRunner(observers=...)`` and the factories installed in
the process with ``install`` (``dovetail run`` installs the metrics and tracing observers the
project asks for). Observers must not raise; one that does is logged and the flow goes on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

import structlog

from dovetail.core.delivery import DeliveryResult
from dovetail.core.envelope import Envelope

if TYPE_CHECKING:
    from dovetail.config.model import Flow

CircuitState = Literal["closed", "half_open", "open"]

log = structlog.get_logger("dovetail.observability")


class FlowObserver(Protocol):
    """What happens in a flow, batch by batch. Every method returns quickly and never raises."""

    def received(self, flow: str, batch: Sequence[Envelope]) -> None:
        """A worker took ``batch`` from the source (before any step)."""

    def step(
        self,
        flow: str,
        step: str,
        seconds: float,
        passed: Sequence[Envelope],
        dropped: Sequence[Envelope],
        failed: Sequence[Envelope],
    ) -> None:
        """A step (or ``route``) processed a batch in ``seconds``: what passed, was filtered
        out (``dropped``) and failed."""

    def delivering(self, flow: str, sink: str, batch: Sequence[Envelope]) -> None:
        """``batch`` is about to be handed to the delivery of ``sink``."""

    def delivered(self, flow: str, sink: str, seconds: float, result: DeliveryResult) -> None:
        """The delivery of a batch to ``sink`` is over (retries included) after ``seconds``."""

    def dead_lettered(self, flow: str, envelopes: Sequence[Envelope]) -> None:
        """``envelopes`` are written to the dead-letter queue (each carries its ``failure``)."""

    def retried(self, flow: str, sink: str, envelopes: Sequence[Envelope]) -> None:
        """``envelopes`` failed transiently at ``sink`` and will be sent again."""

    def parked(self, flow: str, sink: str, envelopes: Sequence[Envelope]) -> None:
        """``envelopes`` are parked in the store for a later attempt at ``sink``."""

    def rate_limit_wait(self, flow: str, sink: str, seconds: float) -> None:
        """Writes to ``sink`` waited ``seconds`` in total for its rate limit."""

    def circuit_state(self, flow: str, sink: str, state: CircuitState) -> None:
        """The circuit breaker of ``sink`` moved to ``state``."""

    def inbox_depth(self, flow: str, depth: int) -> None:
        """Messages taken in by the flow and not yet settled (queued or being carried)."""

    def settled(self, flow: str, envelopes: Sequence[Envelope], seconds: float) -> None:
        """A batch is settled (durably recorded, acked); ``seconds`` since it was taken.

        ``envelopes``: the batch's input messages and the messages derived from them (a
        message may appear twice)."""

    def finished(self, flow: str) -> None:
        """The flow's run is over."""


class Observer:
    """A ``FlowObserver`` that does nothing: subclass it and override what you need."""

    def received(self, flow: str, batch: Sequence[Envelope]) -> None:
        """See ``FlowObserver``."""

    def step(
        self,
        flow: str,
        step: str,
        seconds: float,
        passed: Sequence[Envelope],
        dropped: Sequence[Envelope],
        failed: Sequence[Envelope],
    ) -> None:
        """See ``FlowObserver``."""

    def delivering(self, flow: str, sink: str, batch: Sequence[Envelope]) -> None:
        """See ``FlowObserver``."""

    def delivered(self, flow: str, sink: str, seconds: float, result: DeliveryResult) -> None:
        """See ``FlowObserver``."""

    def dead_lettered(self, flow: str, envelopes: Sequence[Envelope]) -> None:
        """See ``FlowObserver``."""

    def retried(self, flow: str, sink: str, envelopes: Sequence[Envelope]) -> None:
        """See ``FlowObserver``."""

    def parked(self, flow: str, sink: str, envelopes: Sequence[Envelope]) -> None:
        """See ``FlowObserver``."""

    def rate_limit_wait(self, flow: str, sink: str, seconds: float) -> None:
        """See ``FlowObserver``."""

    def circuit_state(self, flow: str, sink: str, state: CircuitState) -> None:
        """See ``FlowObserver``."""

    def inbox_depth(self, flow: str, depth: int) -> None:
        """See ``FlowObserver``."""

    def settled(self, flow: str, envelopes: Sequence[Envelope], seconds: float) -> None:
        """See ``FlowObserver``."""

    def finished(self, flow: str) -> None:
        """See ``FlowObserver``."""


class ObserverGroup(Observer):
    """Several observers behind one: each call goes to every one; a failing one is logged."""

    def __init__(self, observers: Sequence[FlowObserver]) -> None:
        self.observers = tuple(observers)

    def _each(self, method: str, *args: Any) -> None:
        for observer in self.observers:
            try:
                getattr(observer, method)(*args)
            except Exception as exc:  # an observer bug must not stop the flow
                log.error("observer failed", observer=type(observer).__name__, error=exc)

    def received(self, flow: str, batch: Sequence[Envelope]) -> None:
        self._each("received", flow, batch)

    def step(
        self,
        flow: str,
        step: str,
        seconds: float,
        passed: Sequence[Envelope],
        dropped: Sequence[Envelope],
        failed: Sequence[Envelope],
    ) -> None:
        self._each("step", flow, step, seconds, passed, dropped, failed)

    def delivering(self, flow: str, sink: str, batch: Sequence[Envelope]) -> None:
        self._each("delivering", flow, sink, batch)

    def delivered(self, flow: str, sink: str, seconds: float, result: DeliveryResult) -> None:
        self._each("delivered", flow, sink, seconds, result)

    def dead_lettered(self, flow: str, envelopes: Sequence[Envelope]) -> None:
        self._each("dead_lettered", flow, envelopes)

    def retried(self, flow: str, sink: str, envelopes: Sequence[Envelope]) -> None:
        self._each("retried", flow, sink, envelopes)

    def parked(self, flow: str, sink: str, envelopes: Sequence[Envelope]) -> None:
        self._each("parked", flow, sink, envelopes)

    def rate_limit_wait(self, flow: str, sink: str, seconds: float) -> None:
        self._each("rate_limit_wait", flow, sink, seconds)

    def circuit_state(self, flow: str, sink: str, state: CircuitState) -> None:
        self._each("circuit_state", flow, sink, state)

    def inbox_depth(self, flow: str, depth: int) -> None:
        self._each("inbox_depth", flow, depth)

    def settled(self, flow: str, envelopes: Sequence[Envelope], seconds: float) -> None:
        self._each("settled", flow, envelopes, seconds)

    def finished(self, flow: str) -> None:
        self._each("finished", flow)


def group(observers: Sequence[FlowObserver]) -> FlowObserver | None:
    """One observer for ``observers``; ``None`` when there are none (nothing to call)."""
    if not observers:
        return None
    return ObserverGroup(observers)


ObserverFactory = Callable[["Flow"], "FlowObserver | None"]
"""Gives the observer for one flow (or ``None`` for none)."""

_factories_lock = threading.Lock()
_factories: list[ObserverFactory] = []


def install(factory: ObserverFactory) -> Callable[[], None]:
    """Attach ``factory``'s observers to every flow started in this process from now on.

    Returns a function that uninstalls it.
    """
    with _factories_lock:
        _factories.append(factory)

    def uninstall() -> None:
        with _factories_lock:
            if factory in _factories:
                _factories.remove(factory)

    return uninstall


def installed_for(flow: Flow) -> list[FlowObserver]:
    """The observers the installed factories give for ``flow``."""
    with _factories_lock:
        factories = list(_factories)
    found = (factory(flow) for factory in factories)
    return [observer for observer in found if observer is not None]
