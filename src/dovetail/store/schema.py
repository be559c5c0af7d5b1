"""Tables of the state store, shared by the SQLite and PostgreSQL backends.

Times are stored as UTC epoch seconds (floats): portable, sortable and cheap to compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

metadata = sa.MetaData()

schema_version = sa.Table(
    "dovetail_schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_at", sa.Float, nullable=False),
)

checkpoints = sa.Table(
    "dovetail_checkpoints",
    metadata,
    sa.Column("flow", sa.String(200), primary_key=True),
    sa.Column("key", sa.String(1000), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

inbox = sa.Table(
    "dovetail_inbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("flow", sa.String(200), nullable=False, index=True),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("headers", sa.Text, nullable=False),
    sa.Column("ref", sa.String(200), nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sqlite_autoincrement=True,  # ids are never reused, even after the inbox drained empty
)

dead_letters = sa.Table(
    "dovetail_dead_letters",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("flow", sa.String(200), nullable=False, index=True),
    sa.Column("flow_version", sa.String(50), nullable=False),
    sa.Column("message_id", sa.String(64), nullable=False, index=True),
    sa.Column("correlation_id", sa.String(128), nullable=False, index=True),
    sa.Column("step", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("error_class", sa.String(200), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("headers", sa.Text, nullable=False),
    sa.Column("source_position", sa.Text, nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("first_failed_at", sa.Float, nullable=False),
    sa.Column("last_failed_at", sa.Float, nullable=False),
    sa.Column("history", sa.Text, nullable=False),
    sa.Column("idempotency_key", sa.String(500), nullable=True),
    sa.Column("repeats", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_dovetail_dead_letters_key", "flow", "idempotency_key"),
)

deliveries = sa.Table(
    "dovetail_deliveries",
    metadata,
    sa.Column("flow", sa.String(200), primary_key=True),
    sa.Column("sink", sa.String(200), primary_key=True),
    sa.Column("key", sa.String(500), primary_key=True),
    sa.Column("message_id", sa.String(64), nullable=False),
    sa.Column("delivered_at", sa.Float, nullable=False, index=True),
)

journal = sa.Table(
    "dovetail_journal",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("flow", sa.String(200), nullable=False),
    sa.Column("message_id", sa.String(64), nullable=False, index=True),
    sa.Column("correlation_id", sa.String(128), nullable=False, index=True),
    sa.Column("event", sa.String(40), nullable=False),
    sa.Column("step", sa.String(200), nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
)

parked = sa.Table(
    "dovetail_parked",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("flow", sa.String(200), nullable=False),
    sa.Column("flow_version", sa.String(50), nullable=False),
    sa.Column("sink", sa.String(200), nullable=False),
    sa.Column("message_id", sa.String(64), nullable=False),
    sa.Column("correlation_id", sa.String(128), nullable=False, index=True),
    sa.Column("ordering_key", sa.String(500), nullable=True),
    sa.Column("idempotency_key", sa.String(500), nullable=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("original", sa.LargeBinary, nullable=False),
    sa.Column("headers", sa.Text, nullable=False),
    sa.Column("source_position", sa.Text, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("error_class", sa.String(200), nullable=False),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Column("dead_letter_id", sa.Integer, nullable=True),
    sa.Column("next_attempt_at", sa.Float, nullable=False),
    sa.Column("first_failed_at", sa.Float, nullable=False),
    sa.Column("last_failed_at", sa.Float, nullable=False),
    sa.Column("history", sa.Text, nullable=False),
    sa.Index("ix_dovetail_parked_due", "flow", "next_attempt_at"),
    sa.Index("ix_dovetail_parked_ordering", "flow", "sink", "ordering_key"),
    sa.Index("ix_dovetail_parked_idempotency", "flow", "sink", "idempotency_key"),
)

trace_keys = sa.Table(
    "dovetail_trace_keys",
    metadata,
    sa.Column("key", sa.String(500), primary_key=True),
    sa.Column("flow", sa.String(200), primary_key=True),
    sa.Column("message_id", sa.String(64), primary_key=True),
    sa.Column("at", sa.Float, nullable=False),
    sqlite_with_rowid=False,
)
"""Business keys of messages (idempotency key, ``observability.trace_keys`` values), one row
per key and message, for ``dovetail trace KEY``; the primary key is the lookup index (in
SQLite the table itself: ``WITHOUT ROWID``, one b-tree written per row, not two)."""


@dataclass(frozen=True)
class NewColumns:
    """Columns added to a table created by an earlier version, with the table's indexes.

    A store created by this release already has them (its tables are created whole), so
    each column is added only when missing; ``backfill`` maps a dialect name to the
    statement that fills the new columns of existing rows.
    """

    table: sa.Table
    columns: tuple[str, ...]
    backfill: dict[str, str] = field(default_factory=dict)


_KEY_FROM_HEADERS = {
    "sqlite": "UPDATE dovetail_dead_letters SET idempotency_key ="
    " json_extract(headers, '$.\"idempotency-key\"') WHERE idempotency_key IS NULL",
    "postgresql": "UPDATE dovetail_dead_letters SET idempotency_key ="
    " headers::json ->> 'idempotency-key' WHERE idempotency_key IS NULL",
}

MIGRATIONS: list[tuple[int, list[sa.Table | NewColumns]]] = [
    (1, [checkpoints, inbox, dead_letters, deliveries, journal]),
    (2, [parked]),
    (3, []),
    (
        4,
        [
            trace_keys,
            NewColumns(dead_letters, ("idempotency_key", "repeats"), _KEY_FROM_HEADERS),
        ],
    ),
]
"""Schema versions in order, each with the tables it creates and the columns it adds.

Version 3 creates nothing: on SQLite it rebuilds ``dovetail_inbox`` with ``AUTOINCREMENT``
(``sqlite_migrations.py``); PostgreSQL's inbox ids always came from a sequence."""
