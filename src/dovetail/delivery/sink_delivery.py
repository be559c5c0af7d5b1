"""``SinkDelivery`` wraps one sink: skip delivered keys, rate-limit, retry, classify failures.

Contract: ``deliver(batch)`` returns once every message of the batch is either confirmed by the
sink, recognised as already delivered (its idempotency key is recorded), or failed for good
(``envelope.failure`` set: permanent, or transient with attempts exhausted). It never raises
for a message's failure. Each message counts its own attempts; while the sink's circuit is open
no attempt is spent. Each message the sink confirms is handed to the caller's ``confirmed``
callback as soon as it is confirmed (before its concurrency slot is used again), and each
failed attempt retried in place is recorded on the envelope (``attempts``). With ordering, at
most one message per ordering key is in flight, so same-key messages reach the sink in source
order even across retries.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

import anyio
import structlog
from aiolimiter import AsyncLimiter

from dovetail.core.attempts import Attempt, cause_of
from dovetail.core.component import Sink
from dovetail.core.delivery import DeliveryResult, Parked
from dovetail.core.envelope import Envelope
from dovetail.core.pacing import paces_requests, pacing
from dovetail.core.steps import mark_failed
from dovetail.delivery.circuit import CircuitBreaker
from dovetail.delivery.clock import Clock, SystemClock
from dovetail.delivery.parking import ParkingLot
from dovetail.delivery.retry import RetryPolicy
from dovetail.errors import TransientError
from dovetail.observability.events import FlowObserver
from dovetail.observability.masking import policy_for
from dovetail.store.base import Store

log = structlog.get_logger("dovetail.delivery")

Confirmed = Callable[[Sequence[Envelope]], Awaitable[None]]
"""Told of messages the sink confirmed, before their concurrency slot is given back."""

IDEMPOTENCY_HEADER = "idempotency-key"
ORDERING_HEADER = "x-dovetail-ordering-key"


class SinkDelivery:
    """Delivers batches to one named sink with the flow's delivery policy."""

    def __init__(
        self,
        name: str,
        sink: Sink,
        policy: RetryPolicy,
        *,
        flow: str,
        store: Store | None,
        rate_limit: float | None = None,
        clock: Clock | None = None,
        breaker: CircuitBreaker | None = None,
        ordered: bool = False,
        parking: ParkingLot | None = None,
    ) -> None:
        self.name = name
        self.parking = parking
        self.breaker = breaker
        self.ordered = ordered
        self.sink = sink
        self.policy = policy
        self.flow = flow
        self.store = store
        self.clock = clock or SystemClock()
        self.observer: FlowObserver | None = None
        """Told of retries, rate-limit waits and circuit changes; set by the runner."""
        self._limiter: AsyncLimiter | None = None
        self._slots: anyio.CapacityLimiter | None = None
        if rate_limit:
            # a small bucket (1/50 s worth of tokens): any one-second window sees at most
            # ``rate`` plus that burst, i.e. within 2 % of the limit
            burst = max(1, int(rate_limit / 50))
            self._limiter = AsyncLimiter(max_rate=burst, time_period=burst / rate_limit)

    @property
    def step_name(self) -> str:
        return f"sink:{self.name}"

    async def deliver(
        self,
        batch: Sequence[Envelope],
        *,
        redrive: bool = False,
        confirmed: Confirmed | None = None,
        batch_timeout: float | None = None,
    ) -> DeliveryResult:
        """Deliver ``batch``; see the module docstring for the contract.

        ``redrive``: the batch is parked messages taken by the retry pump; they continue their
        attempt count and are not queued behind themselves.

        ``confirmed`` is awaited with the messages the sink has just confirmed, before their
        concurrency slot is given back (see ``_write``): the runner records their delivery
        there, so at most the messages in flight are unrecorded at any moment.

        ``batch_timeout``: with parking, a retry wait that would bring the time this call has
        spent waiting for retries above this many seconds is parked instead of waited for, so
        the messages still retrying do not hold the batch.
        """
        started = time.perf_counter()
        waited = 0.0
        result = DeliveryResult()
        followers: dict[str, list[Envelope]] = {}
        pending = await self._skip_delivered(batch, result, followers)
        tries: dict[int, int] = {}
        if redrive:
            tries = {id(e): e.attempt for e in pending}
        elif self.parking is not None and pending:
            pending = await self._queue_behind_parked(pending, result)
        while pending:
            probe = False
            if self.breaker is not None:
                before = self.breaker.state
                probe = await self.breaker.wait_until_allowed(self.clock)
                self._circuit_moved(before, self.breaker.state)
            sending = self._sendable(pending, probe)
            for envelope in sending:
                envelope.attempt = tries[id(envelope)] = tries.get(id(envelope), 0) + 1
            outcomes = await self._write(sending, confirmed)
            retry: set[int] = set()
            retry_after: float | None = None
            delivered_any = transient_any = False
            for envelope, error in zip(sending, outcomes, strict=True):
                if error is None:
                    result.delivered.append(envelope)
                    delivered_any = True
                    continue
                mark_failed(envelope, self.step_name, error)
                transient = isinstance(error, TransientError)
                transient_any = transient_any or transient
                if transient and not self.policy.gives_up(envelope.attempt):
                    retry.add(id(envelope))
                    hint = getattr(error, "retry_after", None)
                    if hint is not None:
                        retry_after = max(retry_after or 0.0, hint)
                else:
                    result.failed.append(envelope)
            if self.breaker is not None:
                before = self.breaker.state
                self.breaker.record(
                    delivered=delivered_any, transient_failure=transient_any, clock=self.clock
                )
                self._circuit_moved(before, self.breaker.state)
            sent = {id(e) for e in sending}
            failures = {id(e): err for e, err in zip(sending, outcomes, strict=True) if err}
            pending = [e for e in pending if id(e) in retry or id(e) not in sent]
            if retry:
                result.retries += len(retry)
                wait = 0.0
                if self.breaker is None or self.breaker.state != "open":
                    worst = max(tries[i] for i in retry)
                    wait = self.policy.backoff(worst, retry_after)
                parking = self.parking is not None and (
                    wait > self.parking.park_after
                    or (batch_timeout is not None and waited + wait > batch_timeout)
                )
                retrying = [e for e in pending if id(e) in retry]
                self._retrying(retrying, wait, parking)
                if parking:
                    self._park(pending, wait, result)
                    break
                for envelope in retrying:
                    error = failures[id(envelope)]
                    envelope.attempts.append(
                        Attempt(
                            attempt=envelope.attempt,
                            cause=cause_of(error),
                            error_class=type(error).__name__,
                            retry_in=wait,
                        )
                    )
                    envelope.failure = None
                if wait > 0.0:
                    await self.clock.sleep(wait)
                    waited += wait
        if followers:
            self._settle_followers(result, followers)
        if result.parked and self.parking is not None:
            self.parking.parking(len(result.parked))
        result.seconds = time.perf_counter() - started
        return result

    def _retrying(self, envelopes: list[Envelope], wait: float, parking: bool) -> None:
        """Log each message that failed transiently and will be tried again; tell observers."""
        policy = policy_for(self.flow)
        for envelope in envelopes:
            failure = envelope.failure
            log.info(
                "delivery failed; will retry",
                flow=self.flow,
                step=self.step_name,
                message_id=envelope.id,
                correlation_id=envelope.correlation_id,
                attempt=envelope.attempt,
                error_class=failure.error_class if failure else None,
                reason=policy.text(failure.reason, payload=envelope.original) if failure else None,
                retry_in=round(wait, 3),
                parked=parking,
            )
        if self.observer is not None:
            self.observer.retried(self.flow, self.name, envelopes)

    def _circuit_moved(self, before: str, after: str) -> None:
        if before == after or self.breaker is None:
            return
        state = self.breaker.state
        fields = {"flow": self.flow, "step": self.step_name, "state": state}
        if state == "open":
            log.warning(
                "circuit opened: writes paused",
                failures=self.breaker.failures,
                reset_after=self.breaker.reset_after,
                **fields,
            )
        elif state == "half_open":
            log.info("circuit half-open: probing with one message", **fields)
        else:
            log.info("circuit closed: writes resumed", **fields)
        if self.observer is not None:
            self.observer.circuit_state(self.flow, self.name, state)

    def _park(self, pending: list[Envelope], wait: float, result: DeliveryResult) -> None:
        """Park every pending message until ``wait`` seconds from now: the failed ones with
        their failure, the ones queued behind them (ordering) without."""
        due = datetime.now(UTC) + timedelta(seconds=wait)
        result.parked.extend(Parked(envelope, due) for envelope in pending)

    async def _queue_behind_parked(
        self, pending: list[Envelope], result: DeliveryResult
    ) -> list[Envelope]:
        """Park at once (due now) the messages whose key has a message parked at this sink."""
        assert self.parking is not None
        blocked = await self.parking.blocked(self.name, pending)
        if not blocked:
            return pending
        now = datetime.now(UTC)
        result.parked.extend(Parked(pending[i], now) for i in sorted(blocked))
        return [e for i, e in enumerate(pending) if i not in blocked]

    def _sendable(self, pending: list[Envelope], probe: bool) -> list[Envelope]:
        """What to send this round: one message when probing a half-open circuit; with
        ordering, only the earliest pending message of each ordering key."""
        if not self.ordered:
            return pending[:1] if probe else pending
        chosen: list[Envelope] = []
        seen: set[str] = set()
        for envelope in pending:
            key = envelope.headers.get(ORDERING_HEADER)
            if key is not None:
                if key in seen:
                    continue
                seen.add(key)
            chosen.append(envelope)
            if probe:
                break
        return chosen

    @staticmethod
    def _settle_followers(result: DeliveryResult, followers: dict[str, list[Envelope]]) -> None:
        """Later messages repeating a key in the batch share the first one's outcome."""
        for envelope in result.delivered:
            result.duplicates.extend(followers.pop(envelope.headers[IDEMPOTENCY_HEADER], []))
        for leader in list(result.failed):
            for follower in followers.pop(leader.headers.get(IDEMPOTENCY_HEADER, ""), []):
                follower.failure = leader.failure
                follower.attempt = leader.attempt
                result.failed.append(follower)
        for parked in list(result.parked):  # they queue behind their leader in the store
            for follower in followers.pop(parked.envelope.headers.get(IDEMPOTENCY_HEADER, ""), []):
                result.parked.append(Parked(follower, parked.due))

    async def _skip_delivered(
        self,
        batch: Sequence[Envelope],
        result: DeliveryResult,
        followers: dict[str, list[Envelope]],
    ) -> list[Envelope]:
        keyed = [e for e in batch if IDEMPOTENCY_HEADER in e.headers]
        if not keyed:
            return list(batch)
        keys = [e.headers[IDEMPOTENCY_HEADER] for e in keyed]
        done: set[str] = set()
        if self.store is not None:
            done = await self.store.delivered_keys(self.flow, self.name, keys)
        pending: list[Envelope] = []
        for envelope in batch:
            key = envelope.headers.get(IDEMPOTENCY_HEADER)
            if key is not None and key in done:
                result.duplicates.append(envelope)
                continue
            if key is not None and key in followers:
                followers[key].append(envelope)  # waits for the first one with this key
                continue
            if key is not None:
                followers[key] = []
            pending.append(envelope)
        return pending

    async def _write(
        self, batch: list[Envelope], confirmed: Confirmed | None = None
    ) -> list[BaseException | None]:
        """Write ``batch``; per message ``None`` (confirmed) or its failure.

        A sink that sends one request per message (it has a ``concurrency`` option, or a rate
        limit applies) gets one write per message, overlapping, within the sink's
        concurrency slots (shared by the flow's workers); each confirmed message is passed to
        ``confirmed`` before its slot is given back, so the messages confirmed but not yet
        recorded never outnumber the slots. Any other sink gets the batch in one write, and
        its confirmed messages are passed to ``confirmed`` together.
        """
        limiter = self._limiter
        concurrency = _concurrency_of(self.sink)
        if limiter is None and concurrency is None:
            outcomes = await self._write_once(batch)
            done = [e for e, error in zip(batch, outcomes, strict=True) if error is None]
            if confirmed is not None and done:
                await confirmed(done)
            return outcomes
        # each message takes one of the sink's concurrency slots (shared by the flow's
        # workers); when rate-limited, its token is taken as its request leaves
        # (core/pacing.py): by the sink right before sending, when the sink paces its
        # requests, else just before ``write``. A token is never held while the request waits,
        # so requests that waited cannot reach the partner in a burst above the rate.
        if self._slots is None:
            self._slots = anyio.CapacityLimiter(concurrency or _UNBOUNDED_WRITES)
        slots = self._slots
        outcomes = [None] * len(batch)
        turns = None if limiter is None else _Turns(limiter)
        paced_by_sink = paces_requests(self.sink)

        async def one(index: int, envelope: Envelope) -> None:
            async with slots:
                if turns is None:
                    (outcomes[index],) = await self._write_once([envelope])
                else:
                    with pacing(turns):
                        if not paced_by_sink:
                            await turns.wait_turn()
                        (outcomes[index],) = await self._write_once([envelope])
                if outcomes[index] is None and confirmed is not None:
                    await confirmed([envelope])

        async with anyio.create_task_group() as group:
            for index, envelope in enumerate(batch):
                group.start_soon(one, index, envelope)
        if turns is None:
            return outcomes
        waited = turns.waited
        if waited > 0.001:
            log.debug(
                "rate limit delayed writes",
                flow=self.flow,
                step=self.step_name,
                messages=len(batch),
                waited=round(waited, 3),
            )
        if self.observer is not None:
            self.observer.rate_limit_wait(self.flow, self.name, waited)
        return outcomes

    async def _write_once(self, batch: list[Envelope]) -> list[BaseException | None]:
        try:
            outcomes = await self.sink.write(batch)
        except Exception as exc:  # the whole batch failed in the sink: same error for each
            return [exc] * len(batch)
        if len(outcomes) != len(batch):
            error = RuntimeError(
                f"sink {self.name!r} returned {len(outcomes)} results for {len(batch)} messages"
            )
            return [error] * len(batch)
        return list(outcomes)


_UNBOUNDED_WRITES = 64
"""Concurrent rate-limited writes for a sink without a ``concurrency`` option."""


def _concurrency_of(sink: Sink) -> int | None:
    """How many writes the sink runs at once: its ``concurrency`` option, if it has one."""
    value = getattr(getattr(sink, "config", None), "concurrency", None)
    return value if isinstance(value, int) and value > 0 else None


class _Turns:
    """The rate limit as a ``Pacer``; adds up how long requests waited for their turn."""

    def __init__(self, limiter: AsyncLimiter) -> None:
        self.limiter = limiter
        self.waited = 0.0

    async def wait_turn(self) -> None:
        began = time.perf_counter()
        await self.limiter.acquire()
        self.waited += time.perf_counter() - began
