"""SinkDelivery: retries, classification, idempotency skip and rate limiting."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import anyio

from dovetail.core.ack import Settlement
from dovetail.core.envelope import Envelope
from dovetail.core.pacing import pace_request
from dovetail.delivery.clock import FakeClock
from dovetail.delivery.retry import RetryPolicy
from dovetail.delivery.sink_delivery import SinkDelivery
from dovetail.errors import PermanentError, RateLimitedError, TransientError
from dovetail.store.base import BatchRecord, Delivery
from dovetail.store.sqlite import SqliteStore


class ScriptedSink:
    """Fails chosen payloads a given number of times, then accepts them."""

    name = "scripted"

    def __init__(self, script: dict[object, list[BaseException]]) -> None:
        self.script = {k: list(v) for k, v in script.items()}
        self.accepted: list[object] = []
        self.calls: list[list[object]] = []

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
        self.calls.append([e.payload for e in batch])
        outcomes: list[BaseException | None] = []
        for envelope in batch:
            planned = self.script.get(envelope.payload)
            if planned:
                outcomes.append(planned.pop(0))
            else:
                self.accepted.append(envelope.payload)
                outcomes.append(None)
        return outcomes


def envelopes(*payloads: object, keys: bool = False) -> list[Envelope]:
    return [
        Envelope(
            payload=p,
            settlement=Settlement(),
            headers={"idempotency-key": str(p)} if keys else {},
        )
        for p in payloads
    ]


def test_transient_failures_are_retried_with_backoff_until_delivered() -> None:
    sink = ScriptedSink({2: [TransientError("HTTP 503"), TransientError("timeout")]})
    clock = FakeClock()
    delivery = SinkDelivery(
        "erp", sink, RetryPolicy(attempts=5, initial=1, max=10), flow="f", store=None, clock=clock
    )
    result = anyio.run(delivery.deliver, envelopes(1, 2, 3))
    assert [e.payload for e in result.delivered] == [1, 3, 2]
    assert result.failed == [] and result.retries == 2
    assert sink.calls == [[1, 2, 3], [2], [2]]  # only the failed message is re-sent
    assert len(clock.sleeps) == 2 and all(0 <= s <= 2 for s in clock.sleeps)
    assert result.delivered[-1].attempt == 3


def test_permanent_failures_are_not_retried() -> None:
    sink = ScriptedSink({1: [PermanentError("HTTP 422: bad customer")]})
    delivery = SinkDelivery("erp", sink, RetryPolicy(), flow="f", store=None, clock=FakeClock())
    result = anyio.run(delivery.deliver, envelopes(1, 2))
    (failed,) = result.failed
    assert failed.failure is not None and failed.failure.permanent
    assert failed.failure.step == "sink:erp" and failed.failure.reason == "HTTP 422: bad customer"
    assert sink.calls == [[1, 2]]


def test_exhausted_retries_dead_letter_with_the_attempt_count() -> None:
    sink = ScriptedSink({1: [TransientError("HTTP 502")] * 10})
    delivery = SinkDelivery(
        "erp", sink, RetryPolicy(attempts=3), flow="f", store=None, clock=FakeClock()
    )
    result = anyio.run(delivery.deliver, envelopes(1))
    (failed,) = result.failed
    assert failed.attempt == 3 and failed.failure is not None
    assert not failed.failure.permanent and failed.failure.error_class == "TransientError"


def test_retry_after_sets_the_minimum_wait() -> None:
    sink = ScriptedSink({1: [RateLimitedError("HTTP 429", retry_after=7.0)]})
    clock = FakeClock()
    delivery = SinkDelivery(
        "erp", sink, RetryPolicy(initial=0.01, max=30), flow="f", store=None, clock=clock
    )
    anyio.run(delivery.deliver, envelopes(1))
    assert clock.sleeps == [7.0]


def test_a_sink_that_raises_fails_the_whole_batch_as_data() -> None:
    class Broken(ScriptedSink):
        async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
            raise PermanentError("table does not exist")

    delivery = SinkDelivery("db", Broken({}), RetryPolicy(), flow="f", store=None)
    result = anyio.run(delivery.deliver, envelopes(1, 2))
    assert len(result.failed) == 2
    assert {e.failure.reason for e in result.failed if e.failure} == {"table does not exist"}


def test_keys_already_delivered_are_skipped_across_runs(tmp_path: Path) -> None:
    async def main() -> tuple[list[object], int]:
        store = SqliteStore(tmp_path / "s.db")
        await store.open()
        try:
            await store.settle_batch(BatchRecord(flow="f", deliveries=[Delivery("erp", "2", "m")]))
            sink = ScriptedSink({})
            delivery = SinkDelivery("erp", sink, RetryPolicy(), flow="f", store=store)
            result = await delivery.deliver(envelopes(1, 2, 3, 3, keys=True))
            return sink.accepted, len(result.duplicates)
        finally:
            await store.close()

    accepted, duplicates = anyio.run(main)
    assert accepted == [1, 3]  # 2 was delivered before; the second 3 repeats a key in the batch
    assert duplicates == 2


def busiest_window(times: list[float], window: float = 1.0) -> int:
    """The most of ``times`` that fall within any span of ``window`` seconds."""
    ordered = sorted(times)
    best = start = 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


class DepartureSink(ScriptedSink):
    """Records the moment each message leaves, after a wait of its own before sending (a
    connection, a token): the first ``slow`` messages wait ``delay`` seconds, the rest none."""

    def __init__(self, *, paced: bool, slow: int = 0, delay: float = 0.0) -> None:
        super().__init__({})
        self.paces_requests = paced
        self.slow, self.delay = slow, delay
        self.departures: list[float] = []

    async def write(self, batch: Sequence[Envelope]) -> list[BaseException | None]:
        for envelope in batch:
            assert isinstance(envelope.payload, int)
            if envelope.payload < self.slow:
                await anyio.sleep(self.delay)
            if self.paces_requests:
                await pace_request()
            self.departures.append(time.monotonic())
        return await super().write(batch)


def test_rate_limit_paces_writes_as_they_leave() -> None:
    sink = DepartureSink(paced=False)
    delivery = SinkDelivery("erp", sink, RetryPolicy(), flow="f", store=None, rate_limit=20.0)
    anyio.run(delivery.deliver, envelopes(*range(30)))
    assert sorted(sink.accepted) == list(range(30))  # type: ignore[type-var]
    assert all(len(call) == 1 for call in sink.calls)
    # a leaky bucket of one token at 20/s: any second sees at most 20 writes plus that token
    assert busiest_window(sink.departures) <= 21
    assert busiest_window(sink.departures, 0.5) <= 11


def test_a_sink_that_waits_before_sending_spends_its_token_as_the_request_leaves() -> None:
    # the first eight requests wait 0.6 s inside the sink (for a connection, an OAuth2
    # token); had they taken their tokens before that wait, they would leave together
    sink = DepartureSink(paced=True, slow=8, delay=0.6)
    delivery = SinkDelivery("erp", sink, RetryPolicy(), flow="f", store=None, rate_limit=20.0)
    anyio.run(delivery.deliver, envelopes(*range(30)))
    assert sorted(sink.accepted) == list(range(30))  # type: ignore[type-var]
    assert busiest_window(sink.departures) <= 21
    assert busiest_window(sink.departures, 0.5) <= 11


def test_a_repeated_key_shares_the_fate_of_its_first_message() -> None:
    sink = ScriptedSink({1: [PermanentError("HTTP 422")]})
    delivery = SinkDelivery("erp", sink, RetryPolicy(), flow="f", store=None, clock=FakeClock())
    batch = envelopes(1, 1, 2, 2, keys=True)
    result = anyio.run(delivery.deliver, batch)
    assert sink.calls == [[1, 2]]
    assert [e.payload for e in result.failed] == [1, 1]  # not silently settled as a duplicate
    assert [e.payload for e in result.delivered] == [2]
    assert [e.payload for e in result.duplicates] == [2]
