"""The explicit list of components that ship with Dovetail."""

from __future__ import annotations

BUILTIN_MODULES: tuple[str, ...] = (
    "dovetail.connectors.file.source",
    "dovetail.connectors.http.source",
    "dovetail.connectors.schedule.source",
    "dovetail.connectors.sql.source",
    "dovetail.connectors.poll.source",
    "dovetail.connectors.api.source",
    "dovetail.connectors.amqp.source",
    "dovetail.connectors.sftp.source",
    "dovetail.connectors.kafka.source",
    "dovetail.connectors.nats.source",
    "dovetail.connectors.mqtt.source",
    "dovetail.connectors.redis.source",
    "dovetail.steps.validate",
    "dovetail.steps.map",
    "dovetail.steps.lookup",
    "dovetail.steps.filter",
    "dovetail.steps.route",
    "dovetail.steps.split",
    "dovetail.steps.python",
    "dovetail.steps.reconcile",
    "dovetail.connectors.file.sink",
    "dovetail.connectors.http.sink",
    "dovetail.connectors.sql.sink",
    "dovetail.connectors.amqp.sink",
    "dovetail.connectors.sftp.sink",
    "dovetail.connectors.kafka.sink",
    "dovetail.connectors.nats.sink",
    "dovetail.connectors.mqtt.sink",
    "dovetail.connectors.redis.sink",
)
"""Each module defines ``SPEC`` (a ``ComponentSpec``) or ``SPECS`` (a list of them)."""
