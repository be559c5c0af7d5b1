"""The circuit breaker holds a failing partner's messages instead of burning their attempts."""

from __future__ import annotations

import anyio

from dovetail.delivery.circuit import CircuitBreaker
from dovetail.delivery.clock import FakeClock
from dovetail.delivery.retry import RetryPolicy
from dovetail.delivery.sink_delivery import SinkDelivery
from dovetail.errors import PermanentError, TransientError
from tests.delivery.test_sink_delivery import ScriptedSink, envelopes


def test_opens_after_consecutive_failures_then_probes_with_one_message() -> None:
    down = [TransientError("HTTP 503")] * 3
    sink = ScriptedSink({1: list(down), 2: list(down)})
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=2, reset_after=30.0)
    delivery = SinkDelivery(
        "erp",
        sink,
        RetryPolicy(attempts=10, initial=0.1, max=0.1),
        flow="f",
        store=None,
        clock=clock,
        breaker=breaker,
    )
    result = anyio.run(delivery.deliver, envelopes(1, 2))
    assert [e.payload for e in result.delivered] == [1, 2]
    assert result.failed == []
    # two failing calls open it; after 30 s one message probes; a failed probe re-opens it
    assert sink.calls == [[1, 2], [1, 2], [1], [1], [2], [2]]
    assert sum(1 for s in clock.sleeps if abs(s - 30.0) < 1e-6) == 2
    assert breaker.state == "closed"
    assert breaker.transitions[:2] == ["open", "half_open"]


def test_waiting_spends_no_attempt_but_each_probe_does() -> None:
    sink = ScriptedSink({1: [TransientError("timeout")] * 6})
    breaker = CircuitBreaker(threshold=1, reset_after=5.0)
    delivery = SinkDelivery(
        "erp",
        sink,
        RetryPolicy(attempts=2),
        flow="f",
        store=None,
        clock=FakeClock(),
        breaker=breaker,
    )
    result = anyio.run(delivery.deliver, envelopes(1))
    # attempts=2 alone would dead-letter after 2 calls; each failed probe re-opens and waits
    (failed,) = result.failed
    assert failed.attempt == 2
    assert len(sink.calls) == 2


def test_permanent_failures_do_not_open_the_circuit() -> None:
    sink = ScriptedSink({1: [PermanentError("HTTP 422")], 2: [PermanentError("HTTP 422")]})
    breaker = CircuitBreaker(threshold=1, reset_after=5.0)
    delivery = SinkDelivery(
        "erp", sink, RetryPolicy(), flow="f", store=None, clock=FakeClock(), breaker=breaker
    )
    anyio.run(delivery.deliver, envelopes(1, 2))
    assert breaker.state == "closed"


def test_ordered_delivery_keeps_one_message_per_key_in_flight() -> None:
    sink = ScriptedSink({"a1": [TransientError("HTTP 503")]})
    batch = envelopes("a1", "a2", "b1", "b2")
    for envelope in batch:
        envelope.headers["x-dovetail-ordering-key"] = str(envelope.payload)[0]
    delivery = SinkDelivery(
        "erp",
        sink,
        RetryPolicy(initial=0.01),
        flow="f",
        store=None,
        clock=FakeClock(),
        ordered=True,
    )
    anyio.run(delivery.deliver, batch)
    assert sink.accepted.index("a1") < sink.accepted.index("a2")
    assert sink.accepted.index("b1") < sink.accepted.index("b2")
    assert sink.calls[0] == ["a1", "b1"]
