"""The one idea: source -> steps -> sinks in batches; ack a message only once it is settled.

::

    source ──batch──▶ step ▶ step ▶ … ──▶ route ──▶ sink(s)
      ▲                  │ failed              │ delivered / failed
      └──── ack ◀────────┴──── settle ◀────────┴──── dead letter (store)

A message is *settled* when it is delivered to every sink it was routed to, filtered out,
or durably dead-lettered. Per batch the runner:

1. runs the steps; failures become marks on the envelope, never exceptions;
2. routes survivors to their sinks and delivers each sink's share through ``SinkDelivery``
   (idempotency skip, rate limit, retries with backoff);
3. as the sink confirms each message, records its idempotency key and its journal events
   and only then settles it (acks the source message once its last part is settled): a
   message does not wait for the slowest of its batch;
4. writes the rest of the batch's settlement (dead letters, parked messages, filtered and
   duplicate messages) and settles those messages, then asks the source to persist its
   progress (``Source.commit``: the settled prefix, for file sources).

Every store write goes through one ``GroupCommitter``: the confirmations and settlements that
arrive while a transaction runs are written together in the next one. A crash leaves the
unsettled messages unacked: the source redelivers them and the recorded idempotency keys
stop a second delivery of every message whose confirmation was recorded, so only the
messages in flight at the sink (at most its concurrency) can reach it twice. Batches flow
through a bounded stream, so a slow sink slows the source (back-pressure) and memory stays
bounded.
"""

from __future__ import annotations

import copy
import functools
import gc
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import anyio
import structlog
from anyio.abc import ObjectReceiveStream

from dovetail.core.component import StepOutcome
from dovetail.core.delivery import DeliveryResult
from dovetail.core.envelope import Envelope
from dovetail.core.steps import mark_failed
from dovetail.delivery.dead_letter import dead_letter_from
from dovetail.delivery.parking import LEASE_SECONDS, POLL_SECONDS, envelope_of, parked_message
from dovetail.delivery.sink_delivery import IDEMPOTENCY_HEADER
from dovetail.errors import PermanentError
from dovetail.observability.events import FlowObserver, group, installed_for
from dovetail.observability.masking import MaskPolicy, use_policy
from dovetail.runtime.attempt_journal import attempt_history, journal_attempts
from dovetail.runtime.keys import TraceKeyReader, assign_lanes, stamp_idempotency_key
from dovetail.runtime.pipeline import Pipeline
from dovetail.runtime.settlement import SettlementWriter
from dovetail.runtime.summary import FlowHalted, ProgressFn, RunSummary, first_error
from dovetail.store.base import BatchRecord, Delivery, JournalEvent, ParkedMessage
from dovetail.store.group_commit import GroupCommitter

__all__ = ["FlowHalted", "FlowRunner", "ProgressFn", "RunSummary", "first_error"]

log = structlog.get_logger("dovetail.runner")
_REPLAY_SINK = "x-dovetail-replay-sink"
"""The header of a replayed message that failed at one sink: delivered to that sink only."""


class FlowRunner:
    """Drives one built pipeline until its source is exhausted (``once``) or it is stopped."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        on_progress: ProgressFn | None = None,
        observers: Sequence[FlowObserver] = (),
    ) -> None:
        self.pipeline = pipeline
        self.flow = pipeline.flow
        self.store = pipeline.context.store
        self.summary = RunSummary(flow=self.flow.name)
        self._on_progress = on_progress
        self._source_scope: anyio.CancelScope | None = None
        self._stop_requested = False
        self._sink_names = tuple(pipeline.sinks)
        self._claims: dict[str, anyio.Event] = {}
        self._work_scope: anyio.CancelScope | None = None
        self._pump_scope: anyio.CancelScope | None = None
        self._parked_entries: dict[int, ParkedMessage] = {}
        self._mask = MaskPolicy.of_spec(self.flow.spec.observability)
        use_policy(self.flow.name, self._mask)
        self._observer = group([*observers, *installed_for(self.flow)])
        """Metrics, tracing...: called once per batch and stage; ``None`` when nobody listens."""
        for delivery in pipeline.sinks.values():
            delivery.observer = self._observer
        self._in_flight = 0
        self._trace_keys = TraceKeyReader(self.flow.spec.observability.trace_keys)
        self._committer: GroupCommitter | None = None
        """Settlement records go out in group commits, each written by a ``SettlementWriter``
        (a message the store refuses is isolated; an outage is waited out)."""
        if self.store is not None:
            writer = SettlementWriter(self.store, self.flow.name, clock=pipeline.clock)
            self._committer = GroupCommitter(self.store, self.flow.name, commit=writer.write)

    def stop(self) -> None:
        """Stop reading; batches already read are finished, settled and committed (drain).

        Work still unfinished after ``runtime.drain_timeout`` is cancelled: those messages
        stay unacknowledged and are read again on the next start.
        """
        self._stop_requested = True
        if self._source_scope is not None:
            self._source_scope.cancel()
        if self._pump_scope is not None:
            self._pump_scope.cancel()
        if self._work_scope is not None:
            self._work_scope.deadline = min(
                self._work_scope.deadline,
                anyio.current_time() + self.flow.spec.runtime.drain_timeout,
            )

    async def run(self) -> RunSummary:
        """Run to completion; returns the counts. Raises on store or source failure."""
        started = time.perf_counter()
        log.info("flow started", flow=self.flow.name, version=self.flow.version)
        with structlog.contextvars.bound_contextvars(flow=self.flow.name):
            return await self._run(started)

    async def _run(self, started: float) -> RunSummary:
        runtime = self.flow.spec.runtime
        lanes = runtime.workers
        await self.pipeline.open()
        # What was loaded to run the flow (modules, models, compiled steps) lives as long as
        # the flow: out of the collector's way, a collection scans only the messages' objects.
        # Unfrozen when the flow ends, so a program that runs flows one after another (the
        # Python API, a test suite) can still collect what an earlier flow left behind.
        gc.freeze()
        try:
            await self._forget_old_keys()
            streams = [
                anyio.create_memory_object_stream[list[Envelope]](runtime.queue)
                for _ in range(lanes if self.pipeline.ordering_key is not None else 1)
            ]
            senders = [send for send, _ in streams]

            async def emit(batch: list[Envelope]) -> None:
                if not batch:
                    return
                if self._observer is not None:
                    self._in_flight += len(batch)
                    self._observer.inbox_depth(self.flow.name, self._in_flight)
                if len(senders) == 1:
                    await senders[0].send(batch)
                    return
                for lane, share in assign_lanes(
                    batch, len(senders), self.pipeline.ordering_key
                ).items():
                    await senders[lane].send(share)

            async def read() -> None:
                try:
                    with anyio.CancelScope() as scope:
                        self._source_scope = scope
                        if not self._stop_requested:
                            await self.pipeline.source.run(emit)
                finally:
                    for send in senders:
                        send.close()
                    if self._pump_scope is not None:
                        self._pump_scope.cancel()

            try:
                with anyio.CancelScope() as work_scope:
                    self._work_scope = work_scope
                    async with anyio.create_task_group() as group:
                        group.start_soon(read)
                        if self.pipeline.parking is not None and not self.pipeline.context.once:
                            group.start_soon(self._pump_loop)
                        if len(streams) == 1:  # any worker takes the next batch
                            for _ in range(lanes):
                                group.start_soon(self._work, streams[0][1].clone())
                            streams[0][1].close()
                        else:  # one worker per lane: a key's batches are carried in order
                            for _, receive in streams:
                                group.start_soon(self._work, receive)
            except BaseExceptionGroup as group:
                raise first_error(group) from group
            if work_scope.cancelled_caught:
                log.warning(
                    "drain deadline passed; unfinished messages stay unacked", flow=self.flow.name
                )
            elif self.pipeline.context.once and not self._stop_requested:
                await self.pump_due()
            await self.pipeline.source.commit()
        finally:
            gc.unfreeze()
            self.summary.seconds = time.perf_counter() - started
            if self._observer is not None:
                self._observer.finished(self.flow.name)
            await self.pipeline.close()
        log.info("flow finished", **self.summary.as_dict())
        return self.summary

    async def _forget_old_keys(self) -> None:
        if self.store is None:
            return
        retention = self.flow.spec.delivery.idempotency_retention
        purged = await self.store.forget_deliveries(
            datetime.now(UTC) - timedelta(seconds=retention)
        )
        if purged:
            log.info("idempotency keys past retention purged", flow=self.flow.name, count=purged)

    async def _work(self, receive: ObjectReceiveStream[list[Envelope]]) -> None:
        async with receive:
            async for batch in receive:
                await self.process(batch)

    async def process(self, batch: Sequence[Envelope]) -> None:
        """Carry one batch from the source to settlement (steps 1-4 above)."""
        summary = self.summary
        summary.received += len(batch)
        observer = self._observer
        taken = 0.0
        if observer is not None:
            taken = time.perf_counter()
            observer.received(self.flow.name, batch)
        record = BatchRecord(flow=self.flow.name)
        settled: list[Envelope] = []
        acked: list[Envelope] = []
        dead: list[Envelope] = []
        live: list[Envelope] = []
        key = self.pipeline.idempotency_key
        for envelope in batch:
            if envelope.original is None:
                envelope.original = envelope.payload
            if envelope.failure is not None:
                dead.append(envelope)
            elif key is None or stamp_idempotency_key(envelope, key):
                live.append(envelope)
            else:
                dead.append(envelope)
        record.trace_keys = self._trace_keys.keys_of(batch)

        claimed = await self._claim_keys(live)
        try:
            await self._carry(live, dead, settled, acked, record)
        finally:
            released = [self._claims.pop(key) for key in claimed]
            if released:
                released[0].set()
        for envelope in settled:
            await envelope.settlement.settle(envelope)
        await self.pipeline.source.commit()
        if observer is not None:
            observer.settled(
                self.flow.name, [*batch, *settled, *acked], time.perf_counter() - taken
            )
            self._in_flight = max(0, self._in_flight - len(batch))
            observer.inbox_depth(self.flow.name, self._in_flight)
        if self._on_progress is not None:
            self._on_progress(summary)

    async def _claim_keys(self, live: list[Envelope]) -> list[str]:
        """Hold every idempotency key of the batch while the batch is carried.

        When another in-flight batch holds one of them, wait for it and try again, so two
        workers never deliver the same key at once (the later one then finds the delivery
        recorded in the store). A batch takes all its keys at once or none, so no two batches
        can wait for each other.
        """
        keys = list(
            dict.fromkeys(
                key for key in (e.headers.get(IDEMPOTENCY_HEADER) for e in live) if key is not None
            )
        )
        while True:
            busy = next((self._claims[k] for k in keys if k in self._claims), None)
            if busy is None:
                mine = anyio.Event()
                for key in keys:
                    self._claims[key] = mine
                return keys
            await busy.wait()

    async def _carry(
        self,
        live: list[Envelope],
        dead: list[Envelope],
        settled: list[Envelope],
        acked: list[Envelope],
        record: BatchRecord,
    ) -> None:
        """Steps, routing, delivery and the durable settlement write of one batch.

        ``acked``: gets the messages settled as soon as the sink confirmed them."""
        summary = self.summary
        observer = self._observer
        for step in self.pipeline.steps:
            if not live:
                break
            began = time.perf_counter()
            outcome = await self._run_step(step.name, step.process, live)
            if observer is not None:
                observer.step(
                    self.flow.name,
                    step.name,
                    time.perf_counter() - began,
                    outcome.passed,
                    outcome.dropped,
                    outcome.failed,
                )
            for envelope in outcome.dropped:
                self._journal(record, envelope, "filtered", step.name)
                settled.append(envelope)
            summary.filtered += len(outcome.dropped)
            dead.extend(outcome.failed)
            live = outcome.passed

        per_sink = self._route(live, record, settled)
        await self._deliver_all(per_sink, record, settled, dead, acked, redrive=False)
        await self._settle(record, dead, settled, acked)

    async def _deliver_all(
        self,
        per_sink: dict[str, list[Envelope]],
        record: BatchRecord,
        settled: list[Envelope],
        dead: list[Envelope],
        acked: list[Envelope],
        *,
        redrive: bool,
    ) -> None:
        """Deliver each sink's share at once and record what happened to every message.

        Delivered messages are recorded and settled as the sink confirms them (``_confirm``,
        into ``acked``); the others are added to ``record`` and ``settled``/``dead``."""
        summary = self.summary
        results: dict[str, DeliveryResult] = {}
        if per_sink:
            async with anyio.create_task_group() as group:
                for name, share in per_sink.items():
                    group.start_soon(self._deliver, name, share, results, acked, redrive)
        for name, result in results.items():
            summary.retries += result.retries
            summary.duplicates += len(result.duplicates)
            summary.delivered[name] += len(result.delivered)
            for envelope in result.duplicates:
                self._journal(record, envelope, "duplicate_skipped", f"sink:{name}")
            for envelope in (*result.duplicates, *result.failed):
                if envelope.parked_id is not None:
                    record.unparked.append(envelope.parked_id)
            for parked in result.parked:
                self._park(record, name, parked.envelope, parked.due)
            summary.parked += len(result.parked)
            settled.extend(result.duplicates)
            settled.extend(p.envelope for p in result.parked)
            dead.extend(result.failed)

    async def _confirm(
        self, sink: str, acked: list[Envelope], envelopes: Sequence[Envelope]
    ) -> None:
        """Record the delivery of ``envelopes`` to ``sink`` (idempotency keys, the attempts
        before it, the ``delivered`` event) with the next group commit, then settle them."""
        record = BatchRecord(flow=self.flow.name)
        step = f"sink:{sink}"
        deliveries, unparked = record.deliveries, record.unparked
        for envelope in envelopes:
            key = envelope.headers.get(IDEMPOTENCY_HEADER)
            if key is not None:
                deliveries.append(Delivery(sink, key, envelope.id))
            if envelope.parked_id is not None:
                unparked.append(envelope.parked_id)
            if envelope.attempts:
                journal_attempts(record, envelope, step, self._mask)
            self._journal(record, envelope, "delivered", step, {"attempt": envelope.attempt})
        await self._commit(record)
        acked.extend(envelopes)
        for envelope in envelopes:
            if envelope.settlement.release(envelope):
                await envelope.settlement.acknowledge()

    async def _commit(self, record: BatchRecord) -> None:
        """Write ``record`` with the next group commit (nothing to do without a store)."""
        if self._committer is not None:
            await self._committer.write(record)

    def _park(self, record: BatchRecord, sink: str, envelope: Envelope, due: datetime) -> None:
        previous = (
            None if envelope.parked_id is None else self._parked_entries.get(envelope.parked_id)
        )
        message = parked_message(
            envelope,
            flow=self.flow.name,
            flow_version=self.flow.version,
            sink=sink,
            due=due,
            previous=previous,
        )
        message.history.extend(attempt_history(envelope, f"sink:{sink}", self._mask))
        journal_attempts(record, envelope, f"sink:{sink}", self._mask)
        record.parked.append(message)
        log.info(
            "message parked for a later attempt",
            flow=self.flow.name,
            step=f"sink:{sink}",
            message_id=envelope.id,
            correlation_id=envelope.correlation_id,
            attempt=message.attempt,
            next_attempt_at=due.isoformat(),
            reason=self._mask.text(message.reason or "", payload=envelope.original),
        )
        self._journal(
            record,
            envelope,
            "parked",
            f"sink:{sink}",
            {
                "attempt": message.attempt,
                "next_attempt_at": due.isoformat(),
                "reason": message.reason,
            },
        )

    async def _settle(
        self,
        record: BatchRecord,
        dead: list[Envelope],
        settled: list[Envelope],
        acked: list[Envelope],
    ) -> None:
        """Dead-letter the failed, then write the batch's settlement (in the next group
        commit). ``acked``: the messages already settled as they were delivered."""
        halted = self._dead_letter(dead, record)
        if halted is None:
            settled.extend(dead)
        failed_again = {d.id for d in record.dead_letters if d.id is not None}
        record.replayed = sorted(
            {e.dead_letter_id for e in (*settled, *acked) if e.dead_letter_id is not None}
            - failed_again
            - {p.dead_letter_id for p in record.parked}
        )
        if halted is not None:  # a failed parked message stays parked (the flow stops)
            kept = {e.parked_id for e in dead}
            record.unparked = [i for i in record.unparked if i not in kept]
        if self.store is not None:
            await self._commit(record)
            if self.pipeline.parking is not None and record.parked:
                self.pipeline.parking.committed(len(record.parked))
        if halted is not None:
            # what was delivered is recorded above; the failed messages stay unacked
            for envelope in settled:
                await envelope.settlement.settle(envelope)
            settled.clear()
            raise halted

    async def _pump_loop(self) -> None:
        """While the flow runs, send parked messages again when they are due."""
        with anyio.CancelScope() as scope:
            self._pump_scope = scope
            while True:
                await self.pump_due()
                await anyio.sleep(POLL_SECONDS)

    async def pump_due(self) -> int:
        """Send every parked message that is due (oldest first, one per key at a time) to the
        sink that failed it; returns how many were taken."""
        lot = self.pipeline.parking
        if lot is None or self.store is None:
            return 0
        taken = 0
        batch_size = self.flow.spec.runtime.batch_size
        while True:
            claimed = await self.store.claim_parked(
                self.flow.name, datetime.now(UTC), LEASE_SECONDS, batch_size
            )
            if not claimed:
                await lot.refresh()
                return taken
            taken += len(claimed)
            self.summary.redriven += len(claimed)
            await self._redrive(claimed)

    async def _redrive(self, claimed: list[ParkedMessage]) -> None:
        """Deliver claimed parked messages to their sinks and settle the outcome."""
        record = BatchRecord(flow=self.flow.name)
        settled: list[Envelope] = []
        acked: list[Envelope] = []
        dead: list[Envelope] = []
        per_sink: dict[str, list[Envelope]] = {}
        live: list[Envelope] = []
        for message in claimed:
            envelope = envelope_of(message)
            if message.sink not in self.pipeline.sinks:
                reason = f"parked for sink {message.sink!r}, which the flow no longer has"
                mark_failed(envelope, f"sink:{message.sink}", PermanentError(reason))
                dead.append(envelope)
                if message.id is not None:
                    record.unparked.append(message.id)
            else:
                per_sink.setdefault(message.sink, []).append(envelope)
                live.append(envelope)
            assert message.id is not None
            self._parked_entries[message.id] = message
        claimed_keys = await self._claim_keys(live)
        began = time.perf_counter()
        try:
            await self._deliver_all(per_sink, record, settled, dead, acked, redrive=True)
            await self._settle(record, dead, settled, acked)
            if self._observer is not None:
                self._observer.settled(
                    self.flow.name, [*settled, *acked], time.perf_counter() - began
                )
        finally:
            for message in claimed:
                if message.id is not None:
                    self._parked_entries.pop(message.id, None)
            released = [self._claims.pop(key) for key in claimed_keys]
            if released:
                released[0].set()

    async def _run_step(
        self, name: str, process: Callable[..., object], live: list[Envelope]
    ) -> StepOutcome:
        try:
            outcome = await process(live)  # type: ignore[misc]
        except Exception as exc:  # a step bug fails its batch's messages, not the flow
            for envelope in live:
                mark_failed(envelope, name, exc)
            return StepOutcome(failed=list(live))
        if not isinstance(outcome, StepOutcome):
            raise TypeError(f"step {name!r} returned {type(outcome).__name__}, not StepOutcome")
        return outcome

    def _route(
        self, live: list[Envelope], record: BatchRecord, settled: list[Envelope]
    ) -> dict[str, list[Envelope]]:
        per_sink: dict[str, list[Envelope]] = {}
        dropped: list[Envelope] = []
        every_sink = [t for t in self._sink_names if t in self.pipeline.sinks]
        for envelope in live:
            if not envelope.routes and _REPLAY_SINK not in envelope.headers:
                targets = every_sink
            else:
                targets = [
                    t for t in (envelope.routes or self._sink_names) if t in self.pipeline.sinks
                ]
                replay_sink = envelope.headers.get(_REPLAY_SINK)
                if replay_sink is not None:
                    targets = [t for t in targets if t == replay_sink]
            if not targets:
                self._journal(record, envelope, "filtered", "route")
                self.summary.filtered += 1
                settled.append(envelope)
                dropped.append(envelope)
                continue
            if len(targets) > 1:
                envelope.settlement.add(len(targets) - 1)
            per_sink.setdefault(targets[0], []).append(envelope)
            for target in targets[1:]:
                duplicate = copy.copy(envelope)
                duplicate.attempts = []
                per_sink.setdefault(target, []).append(duplicate)
        if dropped and self._observer is not None:
            gone = {id(e) for e in dropped}
            passed = [e for e in live if id(e) not in gone]
            self._observer.step(self.flow.name, "route", 0.0, passed, dropped, [])
        return per_sink

    async def _deliver(
        self,
        name: str,
        share: list[Envelope],
        results: dict[str, DeliveryResult],
        acked: list[Envelope],
        redrive: bool = False,
    ) -> None:
        observer = self._observer
        if observer is not None:
            observer.delivering(self.flow.name, name, share)
        result = await self.pipeline.sinks[name].deliver(
            share,
            redrive=redrive,
            confirmed=functools.partial(self._confirm, name, acked),
            batch_timeout=self.flow.spec.runtime.batch_timeout,
        )
        results[name] = result
        if observer is not None:
            observer.delivered(self.flow.name, name, result.seconds, result)
            if result.parked:
                observer.parked(self.flow.name, name, [p.envelope for p in result.parked])

    def _dead_letter(self, dead: list[Envelope], record: BatchRecord) -> FlowHalted | None:
        """Add dead letters to the batch record; with ``dead_letter: false``, the halt."""
        if not dead:
            return None
        spec = self.flow.spec
        if not spec.delivery.dead_letter:
            first = dead[0]
            assert first.failure is not None
            reason = self._mask.text(first.failure.reason, payload=first.original)
            return FlowHalted(
                f"{self.flow.name}: message {first.id} failed at {first.failure.step}:"
                f" {reason} (dead_letter is off; {len(dead)} message(s) unacked)"
            )
        for envelope in dead:
            failure = envelope.failure
            assert failure is not None
            letter = dead_letter_from(envelope, spec.flow, spec.version, self._mask)
            if envelope.parked_id is not None and envelope.parked_id in self._parked_entries:
                parked = self._parked_entries[envelope.parked_id]
                letter.history = list(parked.history)
                letter.first_failed_at = parked.first_failed_at
            letter.history.extend(attempt_history(envelope, failure.step, self._mask))
            journal_attempts(record, envelope, failure.step, self._mask)
            if failure.step.startswith("sink:"):
                letter.headers[_REPLAY_SINK] = failure.step[len("sink:") :]
            record.dead_letters.append(letter)
            self.summary.reasons[letter.reason] += 1
            self._journal(
                record,
                envelope,
                "dead_lettered",
                failure.step,
                {
                    "reason": letter.reason,
                    "error_class": failure.error_class,
                    "attempt": envelope.attempt,
                },
            )
            payload_field = (
                {"payload": self._mask.payload(letter.payload)}
                if spec.observability.log_payloads == "masked"
                else {}
            )
            log.warning(
                "message dead-lettered",
                flow=self.flow.name,
                step=failure.step,
                message_id=envelope.id,
                correlation_id=envelope.correlation_id,
                attempt=envelope.attempt,
                reason=letter.reason,
                **payload_field,
            )
        self.summary.dead_lettered += len(dead)
        if self._observer is not None:
            self._observer.dead_lettered(self.flow.name, dead)
        return None

    def _journal(
        self,
        record: BatchRecord,
        envelope: Envelope,
        event: str,
        step: str | None,
        detail: dict[str, object] | None = None,
    ) -> None:
        """Journal ``event`` of ``envelope`` in ``record``; ``detail`` (a fresh dict, completed
        in place with the position and the dead letter replayed) becomes the event's detail."""
        envelope.outcome = event
        info: dict[str, object] = {} if detail is None else detail
        if envelope.position is not None:
            info["position"] = envelope.position.describe()
        if envelope.dead_letter_id is not None:
            info["replay_of"] = envelope.dead_letter_id
        record.journal.append(
            JournalEvent(
                envelope.id, envelope.correlation_id, self.flow.name, event, step, info or None
            )
        )
