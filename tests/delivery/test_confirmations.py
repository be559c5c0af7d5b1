"""Confirmations and attempt records of ``SinkDelivery``, for any mix of failures.

Each message is scripted to fail transiently ``k`` times (then succeed) or to fail for good;
whatever the mix, every delivered message is confirmed exactly once, before ``deliver``
returns, and every failed attempt that was retried in place is recorded on its envelope with
its number, cause and the wait before the next attempt.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

from dovetail.core.attempts import with_cause
from dovetail.core.envelope import Envelope
from dovetail.delivery.clock import FakeClock
from dovetail.delivery.retry import RetryPolicy
from dovetail.delivery.sink_delivery import SinkDelivery
from dovetail.errors import PermanentError, TransientError
from tests.delivery.test_sink_delivery import ScriptedSink, envelopes

ATTEMPTS = 4


@dataclass
class _Options:
    concurrency: int


class PerMessageSink(ScriptedSink):
    """A scripted sink that sends one request per message (it has a ``concurrency``)."""

    def __init__(self, script: dict[object, list[BaseException]], concurrency: int) -> None:
        super().__init__(script)
        self.config = _Options(concurrency)


def _plan(failures: int, permanent: bool) -> list[BaseException]:
    planned: list[BaseException] = [
        with_cause(TransientError(f"HTTP 503 from POST /x/{n}"), "HTTP 503")
        for n in range(failures)
    ]
    if permanent:
        planned.append(PermanentError("HTTP 422 from POST /x"))
    return planned


@settings(max_examples=60, deadline=None)
@given(
    plans=st.lists(st.tuples(st.integers(0, ATTEMPTS + 1), st.booleans()), min_size=1, max_size=12),
    concurrency=st.sampled_from([None, 1, 3]),
)
def test_each_delivered_message_is_confirmed_once_with_its_failed_attempts_recorded(
    plans: list[tuple[int, bool]], concurrency: int | None
) -> None:
    script = {index: _plan(k, permanent) for index, (k, permanent) in enumerate(plans)}
    sink = ScriptedSink(script) if concurrency is None else PerMessageSink(script, concurrency)
    confirmed: Counter[object] = Counter()
    in_flight_at_confirm: list[int] = []

    async def confirm(done: Sequence[Envelope]) -> None:
        confirmed.update(e.payload for e in done)
        in_flight_at_confirm.append(len(done))

    delivery = SinkDelivery(
        "erp",
        sink,
        RetryPolicy(attempts=ATTEMPTS, initial=1, max=4),
        flow="f",
        store=None,
        clock=FakeClock(),
    )

    async def main() -> list[Envelope]:
        batch = envelopes(*range(len(plans)))
        result = await delivery.deliver(batch, confirmed=confirm)
        assert {e.payload for e in result.delivered} | {e.payload for e in result.failed} == set(
            range(len(plans))
        )
        return batch

    batch = anyio.run(main)
    for envelope, (failures, permanent) in zip(batch, plans, strict=True):
        delivered = failures < ATTEMPTS and not permanent
        assert confirmed[envelope.payload] == (1 if delivered else 0)
        retried_in_place = min(failures, ATTEMPTS - 1)
        assert [a.attempt for a in envelope.attempts] == list(range(1, retried_in_place + 1))
        assert all(a.cause == "HTTP 503" and a.retry_in is not None for a in envelope.attempts)
        if delivered:
            assert envelope.attempt == failures + 1 and envelope.failure is None
        else:
            assert envelope.failure is not None
            assert envelope.attempt == (failures + 1 if failures < ATTEMPTS else ATTEMPTS)
    if concurrency is not None:  # one confirmation per message, as each is confirmed
        assert set(in_flight_at_confirm) <= {1}
