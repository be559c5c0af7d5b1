"""Key performance indicators per flow (``dovetail kpi``), from the store's aggregates.

The store does the counting (``Store.kpi_rows``); this module picks the window, derives the
rates and means, and shapes the result for people and for ``--json``.

- **messages**: distinct messages settled in the window (delivered to every sink, filtered,
  skipped as duplicates or dead-lettered); a replay keeps its message id (the same message).
- **success rate**: first-pass success, the share of those messages never dead-lettered.
- **dead-lettered**: dead-letter events in the window; **DLQ depth**: open entries now.
- **parked**: parked events in the window; **parked now**: messages waiting to be re-sent.
- **retries**: attempts beyond the first, of the deliveries and dead letters in the window.
- **token renewals**: times a partner answered 401 and the sink renewed its OAuth2 token.
- **mean time to replay**: from a dead letter's last failure to its replay's settlement.
- **latency**: from a message's creation (its UUIDv7 id) to each delivery, nearest-rank
  percentiles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dovetail.store.base import KpiRow, Store

DEFAULT_WINDOW = timedelta(hours=24)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_moment(value: str, now: datetime) -> datetime:
    """``24h``, ``30m``, ``7d`` (that long before ``now``) or an ISO-8601 date or date-time
    (naive values are UTC); raises ``ValueError``."""
    match = _DURATION.match(value)
    if match is not None:
        return now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"{value!r} is neither a duration (24h, 30m, 7d) nor an ISO-8601 time"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(slots=True)
class FlowKpis:
    """The indicators of one flow (or of all flows: ``flow`` is ``"*"``) over a window."""

    flow: str
    messages: int
    succeeded: int
    success_rate: float | None
    """``succeeded / messages``; ``None`` when no message was settled."""
    delivered: int
    filtered: int
    duplicates: int
    dead_lettered: int
    dlq_depth: int
    parked: int
    parked_now: int
    retries: int
    token_renewals: int
    replayed: int
    mean_time_to_replay_s: float | None
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    """``count``, ``mean``, ``p50``, ``p95``, ``p99``."""

    @classmethod
    def of(cls, row: KpiRow) -> FlowKpis:
        succeeded = row.messages - row.failed_messages
        return cls(
            flow=row.flow,
            messages=row.messages,
            succeeded=succeeded,
            success_rate=succeeded / row.messages if row.messages else None,
            delivered=row.delivered,
            filtered=row.filtered,
            duplicates=row.duplicates,
            dead_lettered=row.dead_lettered,
            dlq_depth=row.dead_letters_open,
            parked=row.parked,
            parked_now=row.parked_now,
            retries=row.retries,
            token_renewals=row.token_renewals,
            replayed=row.replayed,
            mean_time_to_replay_s=row.replay_seconds / row.replayed if row.replayed else None,
            latency_ms={
                "count": row.latency_count,
                "mean": row.latency_mean_ms,
                "p50": row.latency_p50_ms,
                "p95": row.latency_p95_ms,
                "p99": row.latency_p99_ms,
            },
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "flow": self.flow,
            "messages": self.messages,
            "succeeded": self.succeeded,
            "success_rate": self.success_rate,
            "delivered": self.delivered,
            "filtered": self.filtered,
            "duplicates_skipped": self.duplicates,
            "dead_lettered": self.dead_lettered,
            "dlq_depth": self.dlq_depth,
            "parked": self.parked,
            "parked_now": self.parked_now,
            "retries": self.retries,
            "token_renewals": self.token_renewals,
            "replayed": self.replayed,
            "mean_time_to_replay_s": self.mean_time_to_replay_s,
            "latency_ms": dict(self.latency_ms),
        }


@dataclass(slots=True)
class KpiReport:
    """The indicators of every flow with activity (or open dead letters) in a window."""

    since: datetime
    until: datetime
    flows: list[FlowKpis]
    total: FlowKpis

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(timespec="seconds"),
            "until": self.until.isoformat(timespec="seconds"),
            "flows": [f.as_dict() for f in self.flows],
            "total": self.total.as_dict(),
        }


def total_of(rows: list[KpiRow]) -> FlowKpis:
    """All flows together; latency percentiles do not add up, so only the count is kept."""
    summed = KpiRow(flow="*")
    for row in rows:
        for name in (
            "messages",
            "failed_messages",
            "delivered",
            "filtered",
            "duplicates",
            "dead_lettered",
            "parked",
            "retries",
            "token_renewals",
            "dead_letters_open",
            "parked_now",
            "replayed",
            "replay_seconds",
            "latency_count",
        ):
            setattr(summed, name, getattr(summed, name) + getattr(row, name))
    return FlowKpis.of(summed)


async def collect_kpis(
    store: Store,
    *,
    flow: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> KpiReport:
    """The KPI report of ``flow`` (or every flow) for ``since <= t < until`` (default: the
    last 24 hours). A named flow without activity gets a row of zeros."""
    end = until or datetime.now(UTC)
    start = since or end - DEFAULT_WINDOW
    rows = await store.kpi_rows(flow, start, end)
    if flow is not None and not rows:
        rows = [KpiRow(flow=flow)]
    return KpiReport(
        since=start, until=end, flows=[FlowKpis.of(row) for row in rows], total=total_of(rows)
    )
