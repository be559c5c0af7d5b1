"""Retries and the rate limit against a partner that fails 30% of the requests at random.

A ``file`` source feeds an ``http`` sink with ``rate_limit`` and a short ``timeout``; the partner
answers a random 30% of the requests with 500, 502, 503, 429 (with ``Retry-After``), a hang
past the sink's timeout, or a slow answer that the sink gives up on although the partner then
processes the request (the idempotent receiver's 409 absorbs the retry). Every message must be
accepted exactly once, and no one-second window may see more requests than the limit allows.

The rate is measured where it matters, at the partner: from its recorded arrival times.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from dovetail.testing.crash import dovetail_executable
from dovetail.testing.partner import PartnerServer

MESSAGES = 2_000
RATE = 60  # requests per second
TOLERANCE = 1.10
FAULTS: list[int | str] = [500, 502, 503, 429, "timeout", "slow:600ms"]

FLOW = f"""\
flow: faulty-partner
version: 1.0.0
source:
  file: {{path: inbox/*.csv, format: csv, after: {{move_to: archive/}}}}
sink:
  http:
    url: ${{env:PARTNER_URL}}/sales-orders
    already_delivered: [409]
    rate_limit: {RATE}/s
    timeout: 300ms
delivery:
  idempotency_key: order_id
  retry: {{attempts: 10, initial: 100ms, max: 1s}}
runtime: {{batch_size: 200, workers: 2}}
"""


def make_project(root: Path, messages: int) -> list[str]:
    (root / "flows").mkdir(parents=True)
    (root / "inbox").mkdir()
    (root / "dovetail.yaml").write_text("project: faults\n")
    (root / "flows" / "faulty-partner.yaml").write_text(FLOW)
    keys = [f"F-{n:05d}" for n in range(messages)]
    with (root / "inbox" / "orders.csv").open("w") as out:
        out.write("order_id,total\n")
        out.writelines(f"{key},{n}.25\n" for n, key in enumerate(keys))
    return keys


def busiest_second(times: list[float]) -> int:
    """The most requests that arrived within any window of one second."""
    ordered = sorted(times)
    best = start = 0
    for end, arrived in enumerate(ordered):
        while arrived - ordered[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_busiest_second_counts_a_sliding_window() -> None:
    assert busiest_second([]) == 0
    assert busiest_second([0.0, 0.5, 0.99, 1.0, 1.2, 5.0]) == 4
    assert busiest_second([0.0, 1.0, 2.0]) == 1


def run_flow(root: Path, partner: PartnerServer) -> dict[str, Any]:
    """``dovetail run --once --json`` against ``partner``; returns the flow's summary."""
    finished = subprocess.run(
        [str(dovetail_executable()), "run", "--once", "--json"],
        cwd=root,
        env={**os.environ, "PARTNER_URL": partner.url, "NO_COLOR": "1"},
        capture_output=True,
        timeout=110,
    )
    assert finished.returncode == 0, finished.stderr.decode()[-2000:]
    [summary] = json.loads(finished.stdout)
    assert isinstance(summary, dict)
    return summary


@pytest.mark.slow
def test_every_message_accepted_once_within_the_rate_despite_faults(tmp_path: Path) -> None:
    keys = make_project(tmp_path, MESSAGES)
    with PartnerServer(conflict_on_duplicate_key="order_id", hang=2.0) as partner:
        partner.faults(ratio=0.3, kinds=FAULTS, seed=20261127)
        summary = run_flow(tmp_path, partner)
        requests = partner.requests("/sales-orders")

    accepted = Counter(r.body["order_id"] for r in requests if r.accepted)
    assert sorted(accepted) == keys, "some messages were never accepted"
    assert max(accepted.values()) == 1, "a message was accepted twice"
    failed = Counter(str(r.status or r.fault) for r in requests if not r.accepted)
    slow_accepts = sum(1 for r in requests if r.accepted and r.answered_at - r.time >= 0.5)
    for kind in ("500", "502", "503", "429", "timeout", "409"):
        assert failed[kind] > 0, f"no {kind} among {failed}: the fault mix was not exercised"
    assert slow_accepts > 0
    assert summary["delivered"] == {"sink": MESSAGES}
    assert summary["dead_lettered"] == 0
    assert summary["retries"] >= len(requests) - MESSAGES - failed["409"]

    arrivals = [r.time for r in requests]
    span = max(arrivals) - min(arrivals)
    print(
        f"\n{len(requests)} requests for {MESSAGES} messages in {span:.1f}s"
        f" ({len(requests) / span:.1f}/s on average, limit {RATE}/s);"
        f" busiest second {busiest_second(arrivals)}; failures {dict(failed)};"
        f" {slow_accepts} accepted after the sink gave up; {summary['retries']} retries"
    )
    assert (len(requests) - RATE) / span <= RATE  # one burst, then the limit on average
    assert busiest_second(arrivals) <= RATE * TOLERANCE


@pytest.mark.slow
def test_no_one_second_window_sees_more_requests_than_the_rate_limit(tmp_path: Path) -> None:
    make_project(tmp_path, 600)
    with PartnerServer() as partner:
        summary = run_flow(tmp_path, partner)
        arrivals = [r.time for r in partner.requests("/sales-orders")]
    assert summary["delivered"] == {"sink": 600}
    peak = busiest_second(arrivals)
    print(f"\nbusiest second without faults: {peak} requests, limit {RATE}/s")
    assert peak <= RATE * TOLERANCE, f"{peak} requests in one second, limit {RATE}/s"
