"""The http sink spends the rate limit's token as each request leaves, not before its own waits.

A slow OAuth2 token endpoint holds the first requests inside the sink; the partner must still
never see more requests in a second than the limit allows.
"""

from __future__ import annotations

from pathlib import Path

import anyio

from dovetail.core.ack import Settlement
from dovetail.core.envelope import Envelope
from dovetail.delivery.retry import RetryPolicy
from dovetail.delivery.sink_delivery import SinkDelivery
from dovetail.testing.components import build_component
from dovetail.testing.partner import PartnerServer

RATE = 20
MESSAGES = 30


def busiest_second(times: list[float]) -> int:
    """The most of ``times`` within any span of one second."""
    ordered = sorted(times)
    best = start = 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_requests_held_by_a_slow_token_endpoint_still_leave_at_the_rate(
    oauth_partner: PartnerServer, tmp_path: Path
) -> None:
    oauth_partner.script("/oauth/token", ["slow:600ms"])
    sink = build_component(
        "sink",
        f"http:\n  url: '{oauth_partner.url}/sales-orders'\n  concurrency: 8\n"
        f"  rate_limit: {RATE}/s\n  auth:\n    oauth2_client_credentials:\n"
        f"      token_url: '{oauth_partner.token_url}'\n"
        f"      client_id: {oauth_partner.client_id}\n"
        f"      client_secret: '{oauth_partner.client_secret}'\n",
        tmp_path,
    )
    delivery = SinkDelivery(
        "erp", sink, RetryPolicy(), flow="f", store=None, rate_limit=float(RATE)
    )
    batch = [
        Envelope(payload={"order_id": f"SO-{n}"}, settlement=Settlement()) for n in range(MESSAGES)
    ]

    async def main() -> None:
        await sink.open()
        try:
            result = await delivery.deliver(batch)
        finally:
            await sink.close()
        assert len(result.delivered) == MESSAGES

    anyio.run(main)
    arrivals = [r.time for r in oauth_partner.requests("/sales-orders")]
    assert len(arrivals) == MESSAGES
    # a one-token bucket: the limit plus that token, and a little for the server thread's lag
    assert busiest_second(arrivals) <= RATE + 2
