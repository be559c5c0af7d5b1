from __future__ import annotations

import anyio
from hypothesis import given
from hypothesis import strategies as st

from dovetail.core.ack import OrderedAcker, Settlement
from dovetail.core.envelope import Envelope


def test_settlement_acks_once_when_every_part_is_settled() -> None:
    acks: list[str] = []

    async def ack() -> None:
        acks.append("ack")

    async def main() -> None:
        parent = Envelope(payload={"items": [1, 2]}, settlement=Settlement(ack))
        children = [parent.derive(1), parent.derive(2)]
        await parent.settlement.settle()  # the parent's own part
        assert acks == []
        await children[0].settlement.settle()
        assert acks == []
        await children[1].settlement.settle()
        assert acks == ["ack"]

    anyio.run(main)


@given(st.integers(min_value=0, max_value=6))
def test_release_says_when_the_last_part_is_settled_and_acks_only_then(extra: int) -> None:
    acks: list[str] = []

    async def ack() -> None:
        acks.append("ack")

    async def main() -> None:
        settlement = Settlement(ack)
        settlement.add(extra)
        answers = [settlement.release() for _ in range(extra + 1)]
        assert answers == [False] * extra + [True]
        assert acks == []
        await settlement.acknowledge()
        assert acks == ["ack"] and settlement.done
        assert settlement.release() is False  # a late part never acks again

    anyio.run(main)


def test_derived_messages_get_distinct_idempotency_keys() -> None:
    parent = Envelope(payload={}, settlement=Settlement(), headers={"idempotency-key": "K"})
    keys = [parent.derive(i).headers["idempotency-key"] for i in range(3)]
    assert keys == ["K/1", "K/2", "K/3"]
    assert parent.headers["idempotency-key"] == "K"


@given(st.permutations(list(range(40))), st.integers(min_value=0, max_value=40))
def test_watermark_is_the_contiguous_settled_prefix(order: list[int], how_many: int) -> None:
    acker = OrderedAcker()
    settled = order[:how_many]
    for seq in settled:
        acker.settle_sync(seq)
    expected = 0
    while expected in set(settled):
        expected += 1
    assert acker.watermark == expected
    assert acker.outstanding == len(settled) - expected


def test_ordered_acker_reports_advances_only() -> None:
    seen: list[int] = []

    async def advanced(mark: int) -> None:
        seen.append(mark)

    async def main() -> None:
        acker = OrderedAcker(start=10, on_advance=advanced)
        await acker.settle(11)
        await acker.settle(10)
        await acker.settle(10)  # repeated: ignored
        await acker.settle(12)

    anyio.run(main)
    assert seen == [12, 13]
