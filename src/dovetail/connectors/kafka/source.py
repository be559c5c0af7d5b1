"""``kafka`` source: a consumer-group member that commits offsets only after settlement.

Auto-commit is off. Each record's ack settles it in an ``OffsetTracker``; ``commit()`` (after
every settled batch) commits, per partition, the offset just past the contiguous settled
prefix, so a crash re-delivers whatever was not settled and never skips a record. When a
rebalance takes partitions away, what is settled is committed first and the rest is left to
the partition's next owner.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from typing import Any

import structlog

from dovetail.connectors.kafka.codec import headers_from_record
from dovetail.connectors.kafka.config import KafkaSourceConfig
from dovetail.connectors.kafka.connection import KafkaConnectError, missing_extra
from dovetail.connectors.kafka.offsets import OffsetTracker, RecordTicket
from dovetail.connectors.payload_codec import read_body
from dovetail.core.ack import Settlement
from dovetail.core.component import BuildContext, Emit
from dovetail.core.envelope import Envelope, SourcePosition
from dovetail.core.ids import correlation_id_from_headers
from dovetail.core.steps import mark_failed
from dovetail.errors import PayloadRejected
from dovetail.plugins.spec import ComponentSpec

log = structlog.get_logger("dovetail.connectors.kafka")


class _RecordAck:
    """The ack of one record: settles it in the tracker (the commit happens per batch)."""

    __slots__ = ("ticket", "tracker")

    def __init__(self, tracker: OffsetTracker, ticket: RecordTicket) -> None:
        self.tracker = tracker
        self.ticket = ticket

    async def __call__(self) -> None:
        self.tracker.settle(self.ticket)


class KafkaSource:
    """Consumes ``config.topics`` in ``config.group_id``; see the module docstring for acks.

    In ``once`` mode ``run()`` returns once every assigned partition is read up to its end
    offset at that moment.
    """

    name = "kafka"

    def __init__(self, config: KafkaSourceConfig, context: BuildContext) -> None:
        self._config = config
        self._context = context
        self._batch_size = max(1, int(context.options.get("batch_size", 500)))
        self._tracker = OffsetTracker()
        self._consumer: Any = None

    @property
    def tracker(self) -> OffsetTracker:
        """The per-partition settlement state (for inspection)."""
        return self._tracker

    async def open(self) -> None:
        """Join the consumer group. Raises ``KafkaConnectError`` when the brokers fail."""
        try:
            from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener  # type: ignore[import-untyped]
            from aiokafka.errors import KafkaError  # type: ignore[import-untyped]
        except ImportError:
            raise missing_extra() from None
        source = self

        class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                await source.commit()
                source._tracker.revoke(list(revoked))

            async def on_partitions_assigned(self, assigned: Any) -> None:
                log.info("partitions assigned", flow=source._context.flow, count=len(assigned))

        config = self._config
        consumer = AIOKafkaConsumer(
            group_id=config.group_id,
            enable_auto_commit=False,
            auto_offset_reset=config.start_from,
            max_poll_records=self._batch_size,
            session_timeout_ms=int(config.session_timeout * 1000),
            **config.client_options(self._context.resolve),
        )
        consumer.subscribe(config.topics, listener=Rebalance())
        try:
            await consumer.start()
        except KafkaError as exc:
            await consumer.stop()
            raise KafkaConnectError(f"cannot join group {config.group_id}: {exc}") from None
        self._consumer = consumer

    async def run(self, emit: Emit) -> None:
        """Emit each poll's records as one batch; in ``once`` mode return when caught up."""
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("the kafka source is not open")
        timeout_ms = max(1, int(self._config.poll_timeout * 1000))
        # --once with no partition assigned (topic missing, group busy): give up after this
        give_up = time.monotonic() + max(10.0, 2 * self._config.session_timeout)
        while True:
            polled = await consumer.getmany(timeout_ms=timeout_ms, max_records=self._batch_size)
            batch = [
                self._envelope(partition, record)
                for partition, records in polled.items()
                for record in records
            ]
            if batch:
                await emit(batch)
            elif self._context.once:
                if await self._caught_up(consumer):
                    return
                if not consumer.assignment() and time.monotonic() > give_up:
                    log.warning("no partition assigned; nothing read", flow=self._context.flow)
                    return

    @staticmethod
    async def _caught_up(consumer: Any) -> bool:
        assigned = list(consumer.assignment())
        if not assigned:
            return False
        ends = await consumer.end_offsets(assigned)
        for partition in assigned:
            if await consumer.position(partition) < ends[partition]:
                return False
        return True

    def _envelope(self, partition: Hashable, record: Any) -> Envelope:
        ticket = self._tracker.track(partition, record.offset)
        headers = headers_from_record(record.headers)
        if record.key is not None:
            headers["kafka-key"] = bytes(record.key).decode("utf-8", errors="replace")
        config = self._config
        envelope = Envelope(
            payload=None,
            settlement=Settlement(_RecordAck(self._tracker, ticket)),
            correlation_id=correlation_id_from_headers(headers),
            headers=headers,
            position=SourcePosition(
                kind="kafka", ref=f"{record.topic}/{record.partition}", offset=record.offset
            ),
        )
        rejected: PayloadRejected | None
        if record.value is None:
            envelope.payload = ""
            rejected = PayloadRejected("the record has no value (a tombstone)")
        else:
            envelope.payload, rejected = read_body(
                record.value,
                config.format,
                max_bytes=int(config.max_record_bytes),
                max_depth=config.max_depth,
                what="record",
            )
        if rejected is not None:
            mark_failed(envelope, "source", rejected)
        return envelope

    async def commit(self) -> None:
        """Commit the settled prefix of every partition whose prefix grew (one request)."""
        consumer = self._consumer
        offsets = self._tracker.committable()
        if consumer is None or not offsets:
            return
        from aiokafka.errors import KafkaError

        try:
            await consumer.commit(offsets)
        except KafkaError as exc:
            # a rebalance or a broker hiccup: the next commit carries the same offsets (or the
            # partition's new owner re-reads them; at-least-once either way)
            log.warning("offset commit failed", flow=self._context.flow, error=str(exc))
            return
        self._tracker.committed(offsets)

    async def close(self) -> None:
        """Commit what is settled and leave the group."""
        consumer = self._consumer
        if consumer is None:
            return
        try:
            await self.commit()
        finally:
            self._consumer = None
            await consumer.stop()


SPEC = ComponentSpec(
    kind="source",
    name="kafka",
    config=KafkaSourceConfig,
    factory=lambda config, context: KafkaSource(config, context),
    summary="Consume Kafka topics in a consumer group, committing offsets after settlement.",
    description=(
        "Joins the consumer group `group_id` on `topics` and emits each poll's records as one"
        " batch (a record's value is the payload; its headers, with `traceparent` or"
        " `x-correlation-id` giving the correlation id, and its key as `kafka-key`, are the"
        " message headers).\n\n"
        "Offsets are never auto-committed: a record counts as consumed only after it is"
        " delivered to every sink, filtered out or dead-lettered, and the committed offset of"
        " a partition only advances over its contiguous settled prefix. A crash or a rebalance"
        " therefore re-delivers unsettled records (declare an idempotency key) and never skips"
        " one. Workers with the same `group_id` share the partitions (competing consumers).\n\n"
        "A record whose value is not valid JSON (or UTF-8 for `text`), is a tombstone, or"
        " breaks `max_record_bytes` or `max_depth` is dead-lettered with its topic, partition"
        " and offset.\n\n"
        "Experimental: tested against a Kafka-compatible broker, not against Apache Kafka"
        " itself (see the connector's docs page)."
    ),
    status="experimental",
    examples=[
        "kafka:\n  bootstrap_servers: ['kafka-1:9092', 'kafka-2:9092']\n"
        "  topics: [orders]\n  group_id: orders-to-erp",
        "kafka:\n  bootstrap_servers: ['${env:KAFKA_BOOTSTRAP}']\n  topics: [invoices]\n"
        "  group_id: invoices\n  security_protocol: SASL_SSL\n  sasl_mechanism: SCRAM-SHA-512\n"
        "  sasl_username: dovetail\n  sasl_password: ${secret:KAFKA_PASSWORD}",
    ],
    extra="kafka",
    modules=("aiokafka",),
)
