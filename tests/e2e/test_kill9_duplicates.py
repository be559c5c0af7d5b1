"""A kill -9 re-sends at most what was in flight, to a partner that does not deduplicate.

CSV file -> ``http`` sink with an idempotency key, against a partner that accepts every
request (no ``Idempotency-Key`` handling, no 409): each re-send is a duplicate effect there.
Deliveries are recorded as the partner confirms them, before the sink's concurrency slot is
used again, so a kill can only leave the requests in flight unrecorded: over 20 kills the
partner sees nothing lost and at most 20 x ``concurrency`` duplicates.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from dovetail.testing.crash import CrashHarness
from dovetail.testing.partner import PartnerServer

ROWS = 5_000
KILLS = 20
CONCURRENCY = 4
BATCH_SIZE = 500

FLOW = f"""\
flow: orders-to-partner
version: 1.0.0
source:
  file:
    path: inbox/*.csv
    format: csv
    after: {{move_to: archive/}}
sink:
  http:
    url: ${{env:PARTNER_URL}}/sales-orders
    concurrency: {CONCURRENCY}
    timeout: 10s
delivery:
  idempotency_key: order_id
  retry: {{attempts: 10, initial: 50ms, max: 1s}}
runtime: {{batch_size: {BATCH_SIZE}, workers: 2}}
"""


def make_project(root: Path) -> list[str]:
    """The project with its input file; returns every order id."""
    (root / "flows").mkdir(parents=True)
    (root / "inbox").mkdir()
    (root / "dovetail.yaml").write_text("project: kill9-duplicates\n")
    (root / "flows" / "orders-to-partner.yaml").write_text(FLOW)
    keys = [f"O-{row:05d}" for row in range(ROWS)]
    with (root / "inbox" / "orders.csv").open("w") as out:
        out.write("order_id,total\n")
        out.writelines(f"{key},{row % 997}.50\n" for row, key in enumerate(keys))
    return keys


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_20_kills_lose_nothing_and_repeat_at_most_what_was_in_flight(tmp_path: Path) -> None:
    keys = make_project(tmp_path)
    with PartnerServer() as partner:
        # every answer takes 20 ms, so the 5,000 messages outlast the 20 kills
        partner.faults(ratio=1.0, kinds=["slow:20ms"], seed=1)
        harness = CrashHarness(
            tmp_path,
            kills=KILLS,
            interval=(0.2, 0.8),
            seed=20261207,
            env={"PARTNER_URL": partner.url},
            activity=lambda: partner.request_count,
        )
        report = harness.run(
            expected=keys,
            delivered=lambda: [str(body["order_id"]) for body in partner.received_bodies()],
        )
    repeats = report.effects - report.delivered
    per_key = Counter(str(body["order_id"]) for body in partner.received_bodies())
    print(
        f"\n{report.describe()}\nduplicates at the partner: {repeats} over {report.kills}"
        f" kill(s) (bound {report.kills} x {CONCURRENCY} = {report.kills * CONCURRENCY});"
        f" most repeats of one key: {max(per_key.values())}"
    )
    assert report.kills == KILLS and not report.finished_early, report.describe()
    assert report.exit_code == 0, report.describe()
    assert report.lost == 0 and report.unexpected == 0, report.describe()
    assert report.delivered == ROWS
    assert repeats <= report.kills * CONCURRENCY, report.describe()
