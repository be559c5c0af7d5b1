"""The journey's outcome is the latest state: a replay supersedes the dead letter it re-drove."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dovetail.observability.journey import journeys_of
from dovetail.store.base import JournalEvent

MESSAGE = "01a21392-ba5f-73ed-b5c6-99c95b8650b7"
START = datetime(2026, 11, 25, 16, 0, tzinfo=UTC)


def _event(minute: int, event: str, step: str, **detail: object) -> JournalEvent:
    return JournalEvent(
        MESSAGE,
        "c-1",
        "orders",
        event,
        step,
        dict(detail) or None,
        START + timedelta(minutes=minute),
    )


def test_a_step_dead_letter_replayed_and_delivered_is_delivered() -> None:
    (journey,) = journeys_of(
        [
            _event(0, "dead_lettered", "lookup", reason="lookup: field status: key not found"),
            _event(5, "replayed", "dlq", replay_of=3),
            _event(5, "delivered", "sink:erp", attempt=1, replay_of=3),
        ]
    )
    assert journey.outcome == "delivered"
    assert [s.event for s in journey.stops] == [
        "received",
        "dead_lettered",
        "replayed",
        "delivered",
    ]
    assert journey.stops[2].replay_of == 3


def test_a_replay_without_its_replayed_event_still_supersedes_a_step_dead_letter() -> None:
    (journey,) = journeys_of(
        [
            _event(0, "dead_lettered", "map", reason="map: field total: not a number"),
            _event(5, "delivered", "sink:erp", attempt=1, replay_of=3),
        ]
    )
    assert journey.outcome == "delivered"


def test_a_replay_that_fails_again_is_dead_lettered() -> None:
    (journey,) = journeys_of(
        [
            _event(0, "dead_lettered", "sink:erp", reason="HTTP 422"),
            _event(5, "replayed", "dlq", replay_of=3),
            _event(5, "dead_lettered", "lookup", reason="lookup: field status: key not found"),
        ]
    )
    assert journey.outcome == "dead_lettered"


def test_a_sink_dead_letter_replayed_to_that_sink_leaves_the_other_sinks_delivered() -> None:
    (journey,) = journeys_of(
        [
            _event(0, "delivered", "sink:warehouse", attempt=1),
            _event(0, "dead_lettered", "sink:erp", reason="HTTP 422"),
            _event(5, "replayed", "dlq", replay_of=3),
            _event(5, "delivered", "sink:erp", attempt=1, replay_of=3),
        ]
    )
    assert journey.outcome == "delivered"


def test_a_replayed_message_filtered_by_the_new_flow_version_is_filtered() -> None:
    (journey,) = journeys_of(
        [
            _event(0, "dead_lettered", "sink:erp", reason="HTTP 422"),
            _event(5, "replayed", "dlq", replay_of=3),
            _event(5, "filtered", "filter"),
        ]
    )
    assert journey.outcome == "filtered"


def test_a_dead_letter_without_a_replay_stays_dead_lettered() -> None:
    (journey,) = journeys_of(
        [
            _event(0, "delivered", "sink:warehouse", attempt=1),
            _event(0, "dead_lettered", "sink:erp", reason="HTTP 422"),
        ]
    )
    assert journey.outcome == "dead_lettered"
