"""Offset commits advance only over the contiguous settled prefix of each partition."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dovetail.connectors.kafka.offsets import OffsetTracker


def test_out_of_order_settlement_commits_only_the_settled_prefix() -> None:
    tracker = OffsetTracker()
    tickets = [tracker.track("p0", offset) for offset in (10, 11, 15, 16)]  # a gap: compaction
    assert tracker.settle(tickets[1]) is False  # 10 is still in flight
    assert tracker.committable() == {}
    assert tracker.settle(tickets[0]) is True
    assert tracker.committable() == {"p0": 12}
    tracker.committed({"p0": 12})
    assert tracker.committable() == {}
    tracker.settle(tickets[3])
    assert tracker.committable() == {}
    tracker.settle(tickets[2])
    assert tracker.committable() == {"p0": 17}


def test_partitions_are_independent_and_a_revoked_partition_ignores_late_acks() -> None:
    tracker = OffsetTracker()
    a = tracker.track("p0", 0)
    b = tracker.track("p1", 5)
    tracker.revoke(["p0"])
    assert tracker.settle(a) is False
    assert tracker.settle(b) is True
    assert tracker.committable() == {"p1": 6}
    again = tracker.track("p0", 0)  # re-assigned: a new generation starts over
    assert again.generation != a.generation
    assert tracker.settle(a) is False
    assert tracker.settle(again) is True
    assert tracker.committable() == {"p0": 1, "p1": 6}


def test_a_settled_record_settled_again_changes_nothing() -> None:
    tracker = OffsetTracker()
    ticket = tracker.track("p", 3)
    assert tracker.settle(ticket) is True
    tracker.committed({"p": 4})
    assert tracker.settle(ticket) is False
    assert tracker.committable() == {}


@st.composite
def partitions(draw: st.DrawFn) -> dict[str, list[int]]:
    result: dict[str, list[int]] = {}
    for name in draw(st.lists(st.sampled_from("abc"), min_size=1, max_size=3, unique=True)):
        gaps = draw(st.lists(st.integers(1, 3), min_size=1, max_size=30))
        offsets, current = [], draw(st.integers(0, 100))
        for gap in gaps:
            offsets.append(current)
            current += gap
        result[name] = offsets
    return result


@settings(max_examples=300, deadline=None)
@given(data=st.data(), layout=partitions())
def test_the_committed_offset_never_passes_an_unsettled_record(
    data: st.DataObject, layout: dict[str, list[int]]
) -> None:
    tracker = OffsetTracker()
    tickets = [
        (name, offset, tracker.track(name, offset))
        for name, offsets in layout.items()
        for offset in offsets
    ]
    order = data.draw(st.permutations(tickets))
    cut = data.draw(st.integers(0, len(order)))
    settled: set[tuple[str, int]] = set()
    committed: dict[str, int] = {}
    for name, offset, ticket in order[:cut]:
        tracker.settle(ticket)
        settled.add((name, offset))
        if data.draw(st.booleans()):
            now = tracker.committable()
            committed.update({str(key): value for key, value in now.items()})
            tracker.committed(now)
    committed.update({str(key): value for key, value in tracker.committable().items()})
    for name, offsets in layout.items():
        prefix = 0
        while prefix < len(offsets) and (name, offsets[prefix]) in settled:
            prefix += 1
        expected = offsets[prefix - 1] + 1 if prefix else None
        assert committed.get(name) == expected
        unsettled = [offset for offset in offsets if (name, offset) not in settled]
        if unsettled and name in committed:
            assert committed[name] <= min(unsettled)
