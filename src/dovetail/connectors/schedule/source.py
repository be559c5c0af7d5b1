"""``schedule`` source: a cron trigger that emits one message per tick."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import anyio
from croniter import croniter
from pydantic import Field, field_validator

from dovetail.core.ack import Settlement
from dovetail.core.component import BuildContext, Emit
from dovetail.core.envelope import Envelope, SourcePosition
from dovetail.plugins.spec import ComponentConfig, ComponentSpec

Clock = Callable[[], datetime]
"""Returns the current time; a naive result is taken to be in the schedule's timezone."""


class ScheduleConfig(ComponentConfig):
    cron: str
    """Cron expression: five fields (minute to weekday), or six with seconds last."""
    timezone: str = "UTC"
    """IANA timezone the expression is read in (`Europe/Berlin`)."""
    payload: dict[str, Any] = Field(default_factory=dict)
    """Static fields added to every tick's message."""

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, value: str) -> str:
        try:
            croniter(value)
        except (ValueError, KeyError) as exc:
            raise ValueError(f"invalid cron expression {value!r}: {exc}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r} (expected e.g. UTC or Europe/Berlin)"
            ) from None
        return value

    @field_validator("payload")
    @classmethod
    def _check_payload(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "scheduled_at" in value:
            raise ValueError("'scheduled_at' is set by each tick; choose another field name")
        return value


class ScheduleSource:
    """Emits ``{"scheduled_at": <ISO 8601>, **payload}`` at every cron tick.

    Missed ticks (the flow was busy longer than one interval) are skipped, not caught up.
    In ``once`` mode one tick is emitted immediately and ``run`` returns. Ticks carry nothing
    to acknowledge, so acks and ``commit()`` are no-ops.
    """

    def __init__(
        self, config: ScheduleConfig, context: BuildContext, *, clock: Clock | None = None
    ) -> None:
        self.config = config
        self._tz: tzinfo = ZoneInfo(config.timezone)
        option = context.options.get("clock")
        self._clock: Clock = clock or (option if callable(option) else self._system_time)
        self._once = context.once

    async def open(self) -> None:
        """Nothing to open."""

    async def run(self, emit: Emit) -> None:
        """Emit a message per tick until cancelled (``once``: one tick now, then return)."""
        if self._once:
            await emit([self._tick(self._now())])
            return
        last: datetime | None = None
        while True:
            now = self._now()
            start = now if last is None or now > last else last
            due: datetime = croniter(self.config.cron, start).get_next(datetime)
            await anyio.sleep(max(0.0, (due - now).total_seconds()))
            await emit([self._tick(due)])
            last = due

    async def commit(self) -> None:
        """Nothing to persist."""

    async def close(self) -> None:
        """Nothing to close."""

    def _now(self) -> datetime:
        now = self._clock()
        return now.replace(tzinfo=self._tz) if now.tzinfo is None else now.astimezone(self._tz)

    def _system_time(self) -> datetime:
        return datetime.now(self._tz)

    def _tick(self, at: datetime) -> Envelope:
        stamp = at.isoformat()
        payload = {"scheduled_at": stamp, **copy.deepcopy(self.config.payload)}
        return Envelope(
            payload=payload,
            settlement=Settlement(),
            position=SourcePosition(kind="schedule", ref=f"schedule:{stamp}"),
            original=payload,
        )


SPEC = ComponentSpec(
    kind="source",
    name="schedule",
    config=ScheduleConfig,
    factory=lambda config, context: ScheduleSource(config, context),
    summary="Trigger a flow on a cron schedule: one message per tick.",
    description=(
        'Each tick emits `{"scheduled_at": "<ISO 8601 time>", ...payload}`. The cron'
        " expression is read in `timezone`; six fields add seconds (last). Ticks missed while"
        " the flow was busy are skipped. With `dovetail run --once` one tick fires immediately."
    ),
    examples=[
        'schedule: {cron: "*/5 * * * *"}',
        'schedule:\n  cron: "0 6 * * 1-5"\n  timezone: Europe/Berlin\n'
        "  payload: {report: daily-stock}",
    ],
)
