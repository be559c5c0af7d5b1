"""Exactly-once effects at an HTTP partner while ``dovetail run`` is killed over and over.

CSV files -> map (a mapping sheet) -> ``http`` sink with an idempotency key, against a
partner that answers 409 to a key it already accepted (``conflict_on_duplicate_key``) and a
sink that counts 409 as delivered (``already_delivered: [409]``): the idempotent-receiver
pattern. A kill after the partner accepted a request but before Dovetail recorded the
delivery leads to a re-send that the partner answers 409. The partner's records must show
every key accepted exactly once.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from dovetail.testing.crash import CrashHarness, dovetail_executable
from dovetail.testing.partner import PartnerServer

FILES = 4
ROWS_PER_FILE = 5_000
BATCH_SIZE = 100
WORKERS = 2
KILLS = 50

FLOW = f"""\
flow: orders-to-partner
version: 1.0.0
source:
  file:
    path: inbox/*.csv
    format: csv
    after: {{move_to: archive/}}
steps:
  - map: {{sheet: mappings/order.csv}}
sink:
  http:
    url: ${{env:PARTNER_URL}}/sales-orders
    already_delivered: [409]
    concurrency: 4
    timeout: 10s
delivery:
  idempotency_key: order_id
  retry: {{attempts: 10, initial: 50ms, max: 1s}}
runtime: {{batch_size: {BATCH_SIZE}, workers: {WORKERS}}}
"""

SHEET = """\
target,source,transform,required,note
order_id,order_id,trim,yes,the partner's key
amount,total,number,yes,
country,country,upper,yes,ISO 3166-1 alpha-2
"""


def make_project(root: Path) -> list[str]:
    """The project with its input files; returns every order id, in input order."""
    (root / "flows").mkdir(parents=True)
    (root / "inbox").mkdir()
    (root / "dovetail.yaml").write_text("project: crash-http\n")
    (root / "flows" / "orders-to-partner.yaml").write_text(FLOW)
    (root / "mappings").mkdir()
    (root / "mappings" / "order.csv").write_text(SHEET)
    keys: list[str] = []
    for part in range(FILES):
        with (root / "inbox" / f"orders-{part}.csv").open("w") as out:
            out.write("order_id,total,country\n")
            for row in range(ROWS_PER_FILE):
                key = f"O-{part}-{row:05d}"
                keys.append(key)
                out.write(f"{key},{row % 997}.50,{'nl' if row % 2 else 'de'}\n")
    return keys


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_http_partner_accepts_every_key_exactly_once_across_50_kills(tmp_path: Path) -> None:
    keys = make_project(tmp_path)
    with PartnerServer(conflict_on_duplicate_key="order_id") as partner:
        harness = CrashHarness(
            tmp_path,
            kills=KILLS,
            interval=(0.1, 0.8),
            seed=20261125,
            env={"PARTNER_URL": partner.url},
            activity=lambda: partner.request_count,
        )
        report = harness.run(
            expected=keys,
            delivered=lambda: [str(body["order_id"]) for body in partner.received_bodies()],
        )
        requests = partner.requests("/sales-orders")
    statuses = Counter(r.status for r in requests)
    print(f"\n{report.describe()}\npartner answers: {dict(statuses)}")

    assert report.kills >= KILLS, report.describe()
    assert not report.finished_early, report.describe()
    assert report.ok, report.describe()
    assert report.expected == report.delivered == FILES * ROWS_PER_FILE
    # the partner saw each key as its Idempotency-Key header and the mapped body
    assert all(r.headers.get("idempotency-key") == r.body["order_id"] for r in requests)
    sample = next(r.body for r in requests if r.body["order_id"] == "O-0-00003")
    assert sample == {"order_id": "O-0-00003", "amount": 3.5, "country": "NL"}
    # re-sends only for deliveries a kill interrupted: at most the batches in flight per kill
    conflicts = statuses[409]
    assert conflicts <= report.kills * WORKERS * BATCH_SIZE
    assert set(statuses) <= {201, 409}, f"unexpected partner answers {statuses}"
    # every input file archived, nothing dead-lettered
    assert not list((tmp_path / "inbox").glob("*.csv"))
    assert sorted(p.name for p in (tmp_path / "archive").glob("*.csv")) == [
        f"orders-{part}.csv" for part in range(FILES)
    ]
    listed = subprocess.run(
        [str(dovetail_executable()), "dlq", "list", "--status", "all", "--json"],
        cwd=tmp_path,
        capture_output=True,
        check=True,
    )
    assert json.loads(listed.stdout) == []
