"""The SQL behind ``Store.kpi_rows``, shared by the SQLite and PostgreSQL stores.

Everything is aggregated by the database: the journal can hold millions of events, and only a
handful of rows per flow come back. Statements use ``?`` placeholders (the PostgreSQL store
rewrites them for its driver); the two dialects differ only in how a hexadecimal digit is
found in a string and how a JSON field is read.

- counts: one pass over the window's journal events, grouped by flow;
- latency: ``delivered`` time minus the creation time in the message's UUIDv7 id (its first
  48 bits are Unix milliseconds); percentiles by nearest rank, ranked per flow with a window
  function, so only three rows per flow are returned;
- mean time to replay: per dead letter marked ``replayed``, the first settlement (delivered,
  filtered or duplicate) of the same flow and correlation id after its last failure.
  A replay re-drives the dead letter as a new message with the same correlation id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from dovetail.store.base import KpiRow

Dialect = Literal["sqlite", "postgresql"]

Statement = tuple[str, list[Any]]

_SETTLED = "('delivered', 'filtered', 'duplicate_skipped', 'dead_lettered')"
_SUCCEEDED = "('delivered', 'filtered', 'duplicate_skipped')"
_HEX = "'0123456789abcdef'"
_TIME_DIGITS = (1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13)
"""1-based positions of the 12 hexadecimal digits of a UUIDv7's millisecond timestamp."""
_IS_UUID7 = "length(message_id) = 36 AND substr(message_id, 15, 1) = '7'"


def created_ms(dialect: Dialect) -> str:
    """SQL for the creation time (Unix ms) in ``message_id``, a lower-case UUIDv7."""
    find = "instr" if dialect == "sqlite" else "strpos"
    terms = [
        f"({find}({_HEX}, substr(message_id, {position}, 1)) - 1) * {16 ** (11 - index)}"
        for index, position in enumerate(_TIME_DIGITS)
    ]
    return "(" + " + ".join(terms) + ")"


def _attempt(dialect: Dialect) -> str:
    """SQL for the ``attempt`` recorded in an event's JSON detail."""
    if dialect == "sqlite":
        return "CAST(json_extract(detail, '$.attempt') AS INTEGER)"
    return "CAST(CAST(detail AS json) ->> 'attempt' AS integer)"


def _window(flow: str | None, since: datetime, until: datetime, column: str) -> Statement:
    where = f"{column} >= ? AND {column} < ?"
    params: list[Any] = [since.timestamp(), until.timestamp()]
    if flow is not None:
        where += " AND flow = ?"
        params.append(flow)
    return where, params


def _flow_only(flow: str | None, prefix: str) -> Statement:
    """`` {prefix}flow = ?`` and its parameter, or nothing for every flow."""
    return ("", []) if flow is None else (f" {prefix}flow = ?", [flow])


def statements(
    dialect: Dialect, flow: str | None, since: datetime, until: datetime
) -> dict[str, Statement]:
    """The queries whose results ``assemble`` turns into ``KpiRow``s, by name."""
    where, params = _window(flow, since, until, "at")
    attempt = _attempt(dialect)
    counts = (
        "SELECT flow,"
        f" COUNT(DISTINCT CASE WHEN event IN {_SETTLED} THEN message_id END),"
        " COUNT(DISTINCT CASE WHEN event = 'dead_lettered' THEN message_id END),"
        " SUM(CASE WHEN event = 'delivered' THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN event = 'filtered' THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN event = 'duplicate_skipped' THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN event = 'dead_lettered' THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN event = 'parked' THEN 1 ELSE 0 END),"
        f" SUM(CASE WHEN event = 'delivered' AND {attempt} > 1 THEN {attempt} - 1 ELSE 0 END),"
        " SUM(CASE WHEN event = 'token_renewed' THEN 1 ELSE 0 END)"
        f" FROM dovetail_journal WHERE {where} GROUP BY flow"
    )
    latency = (
        f"WITH lat AS (SELECT flow, at * 1000.0 - {created_ms(dialect)} AS ms"
        f" FROM dovetail_journal WHERE event = 'delivered' AND {_IS_UUID7} AND {where}),"
        " ranked AS (SELECT flow, ms,"
        " ROW_NUMBER() OVER (PARTITION BY flow ORDER BY ms) AS rn,"
        " COUNT(*) OVER (PARTITION BY flow) AS n,"
        " AVG(ms) OVER (PARTITION BY flow) AS mean FROM lat)"
        " SELECT flow, n, mean, rn, ms FROM ranked"
        " WHERE rn = (50 * n + 99) / 100 OR rn = (95 * n + 99) / 100 OR rn = (99 * n + 99) / 100"
    )
    letter_where, letter_params = _window(flow, since, until, "last_failed_at")
    letter_retries = (
        "SELECT flow, SUM(CASE WHEN attempt > 1 THEN attempt - 1 ELSE 0 END)"
        f" FROM dovetail_dead_letters WHERE {letter_where} GROUP BY flow"
    )
    open_where, open_params = _flow_only(flow, "AND ")
    open_letters = (
        "SELECT flow, COUNT(*) FROM dovetail_dead_letters"
        f" WHERE status = 'open'{open_where} GROUP BY flow"
    )
    parked_where, parked_params = _flow_only(flow, "WHERE ")
    parked_now = f"SELECT flow, COUNT(*) FROM dovetail_parked{parked_where} GROUP BY flow"
    replay_where, replay_params = _flow_only(flow, "AND d.")
    replays = (
        "SELECT flow, COUNT(*), SUM(replayed_at - last_failed_at) FROM ("
        " SELECT d.flow AS flow, d.last_failed_at AS last_failed_at,"
        " (SELECT MIN(j.at) FROM dovetail_journal j"
        "  WHERE j.correlation_id = d.correlation_id AND j.flow = d.flow"
        f"  AND j.event IN {_SUCCEEDED} AND j.at > d.last_failed_at) AS replayed_at"
        " FROM dovetail_dead_letters d"
        f" WHERE d.status = 'replayed' AND d.last_failed_at < ?{replay_where}"
        ") r WHERE replayed_at >= ? AND replayed_at < ? GROUP BY flow"
    )
    return {
        "counts": (counts, params),
        "latency": (latency, list(params)),
        "letter_retries": (letter_retries, letter_params),
        "open_letters": (open_letters, open_params),
        "parked_now": (parked_now, parked_params),
        "replays": (
            replays,
            [until.timestamp(), *replay_params, since.timestamp(), until.timestamp()],
        ),
    }


def assemble(results: Mapping[str, Sequence[Sequence[Any]]]) -> list[KpiRow]:
    """``KpiRow``s (sorted by flow) from the rows each statement returned."""
    rows: dict[str, KpiRow] = {}

    def row(flow: str) -> KpiRow:
        found = rows.get(flow)
        if found is None:
            found = rows[flow] = KpiRow(flow=flow)
        return found

    for (
        flow,
        messages,
        failed,
        delivered,
        filtered,
        dupes,
        dead,
        parked,
        retries,
        renewed,
    ) in results["counts"]:
        kpi = row(flow)
        kpi.token_renewals = int(renewed or 0)
        kpi.messages, kpi.failed_messages = int(messages or 0), int(failed or 0)
        kpi.delivered, kpi.filtered = int(delivered or 0), int(filtered or 0)
        kpi.duplicates, kpi.dead_lettered = int(dupes or 0), int(dead or 0)
        kpi.parked, kpi.retries = int(parked or 0), kpi.retries + int(retries or 0)
    for flow, retries in results["letter_retries"]:
        row(flow).retries += int(retries or 0)
    for flow, count in results["open_letters"]:
        row(flow).dead_letters_open = int(count)
    for flow, count in results["parked_now"]:
        row(flow).parked_now = int(count)
    for flow, count, seconds in results["replays"]:
        kpi = row(flow)
        kpi.replayed, kpi.replay_seconds = int(count), float(seconds or 0.0)
    for flow, count, mean, rank, ms in results["latency"]:
        kpi = row(flow)
        n, rank, value = int(count), int(rank), float(ms)
        kpi.latency_count, kpi.latency_mean_ms = n, float(mean)
        if rank == (50 * n + 99) // 100:
            kpi.latency_p50_ms = value
        if rank == (95 * n + 99) // 100:
            kpi.latency_p95_ms = value
        if rank == (99 * n + 99) // 100:
            kpi.latency_p99_ms = value
    return [rows[name] for name in sorted(rows)]
