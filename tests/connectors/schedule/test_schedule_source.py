"""The schedule source: cron validation, once mode, ticks and the injectable clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import anyio
import pytest
from pydantic import ValidationError

from dovetail.connectors.schedule.source import ScheduleConfig, ScheduleSource
from dovetail.core.component import BuildContext
from dovetail.core.envelope import Envelope
from dovetail.testing.components import build_component


async def collect(source: ScheduleSource, count: int) -> list[Envelope]:
    """Run ``source`` until it emitted ``count`` messages (or returned); at most 5 s."""
    emitted: list[Envelope] = []
    done = anyio.Event()

    async def emit(batch: list[Envelope]) -> None:
        emitted.extend(batch)
        if len(emitted) >= count:
            done.set()

    await source.open()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:

            async def run() -> None:
                await source.run(emit)
                done.set()

            group.start_soon(run)
            await done.wait()
            group.cancel_scope.cancel()
    await source.close()
    return emitted


def test_once_mode_emits_exactly_one_tick_now(tmp_path: Path) -> None:
    source = build_component(
        "source", "schedule: {cron: '0 3 * * *', payload: {report: stock}}", tmp_path, once=True
    )
    before = datetime.now(UTC)
    emitted = anyio.run(collect, source, 2)
    (tick,) = emitted
    assert set(tick.payload) == {"scheduled_at", "report"}
    assert tick.payload["report"] == "stock"
    scheduled = datetime.fromisoformat(tick.payload["scheduled_at"])
    assert (scheduled - before).total_seconds() < 2
    assert tick.position is not None
    assert tick.position.kind == "schedule"


def test_once_mode_uses_the_injected_clock_in_the_schedule_timezone(tmp_path: Path) -> None:
    config = ScheduleConfig.model_validate({"cron": "*/5 * * * *", "timezone": "Europe/Berlin"})
    context = BuildContext(flow="f", flow_version="1", project_dir=tmp_path, once=True)
    source = ScheduleSource(config, context, clock=lambda: datetime(2025, 1, 6, 5, 0, tzinfo=UTC))
    (tick,) = anyio.run(collect, source, 1)
    assert tick.payload == {"scheduled_at": "2025-01-06T06:00:00+01:00"}


def test_ticks_follow_the_cron_expression(tmp_path: Path) -> None:
    source = build_component("source", "schedule: {cron: '* * * * * *'}", tmp_path, once=False)
    emitted = anyio.run(collect, source, 2)
    first, second = (datetime.fromisoformat(t.payload["scheduled_at"]) for t in emitted[:2])
    assert first.microsecond == 0
    assert (second - first).total_seconds() == 1.0
    assert emitted[0].id != emitted[1].id
    assert emitted[0].correlation_id != emitted[1].correlation_id


def test_each_tick_gets_its_own_copy_of_the_static_payload(tmp_path: Path) -> None:
    source = build_component(
        "source", "schedule: {cron: '* * * * * *', payload: {tags: [a]}}", tmp_path, once=True
    )
    (tick,) = anyio.run(collect, source, 1)
    tick.payload["tags"].append("b")
    assert source.config.payload == {"tags": ["a"]}


def test_clock_without_timezone_is_read_in_the_schedule_timezone(tmp_path: Path) -> None:
    config = ScheduleConfig.model_validate({"cron": "0 * * * *", "timezone": "America/New_York"})
    context = BuildContext(flow="f", flow_version="1", project_dir=tmp_path, once=True)
    source = ScheduleSource(config, context, clock=lambda: datetime(2025, 7, 1, 8, 30))
    (tick,) = anyio.run(collect, source, 1)
    stamp = datetime.fromisoformat(tick.payload["scheduled_at"])
    assert stamp == datetime(2025, 7, 1, 8, 30, tzinfo=ZoneInfo("America/New_York"))


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("schedule: {cron: '61 * * * *'}", "invalid cron expression '61 * * * *': "),
        ("schedule: {cron: 'every day'}", "invalid cron expression 'every day'"),
        ("schedule: {cron: '* * * * *', timezone: Mars/Olympus}", "unknown timezone"),
        ("schedule: {cron: '* * * * *', payload: {scheduled_at: x}}", "set by each tick"),
        ("schedule: {cron: '* * * * *', every: 5m}", "Extra inputs are not permitted"),
    ],
)
def test_invalid_config_is_a_validation_error(tmp_path: Path, snippet: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("*", r"\*")):
        build_component("source", snippet, tmp_path)
