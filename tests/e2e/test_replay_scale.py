"""Replay at scale: 1,000 dead letters re-driven after the fix, twice, through the real CLI.

Two causes: a lookup miss (fixed by adding the code to the table) and a partner that refused
the messages with 422 (fixed on the partner's side). Replaying twice must deliver each key
exactly once, leave no open dead letter and mark every entry ``replayed``.
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

FAILING = 1_000
PASSING = 200

FLOW = """\
flow: orders-with-status
version: 1.0.0
source:
  file: {path: inbox/*.csv, format: csv, after: {move_to: archive/}}
steps:
  - lookup: {table: lookups/status.csv, key: status, into: erp_status, on_missing: dead_letter}
sink:
  http:
    url: ${env:PARTNER_URL}/sales-orders
    already_delivered: [409]
delivery:
  idempotency_key: order_id
  retry: {attempts: 3, initial: 50ms, max: 200ms}
runtime: {batch_size: 250, workers: 2}
"""


def make_project(root: Path, *, failing_status: str) -> tuple[list[str], list[str]]:
    """The project; returns the keys that fail at first and those that pass."""
    (root / "flows").mkdir(parents=True)
    (root / "inbox").mkdir()
    (root / "lookups").mkdir()
    (root / "dovetail.yaml").write_text("project: replay\n")
    (root / "flows" / "orders-with-status.yaml").write_text(FLOW)
    (root / "lookups" / "status.csv").write_text("code,erp_status\npaid,RELEASED\n")
    failing = [f"R-{n:05d}" for n in range(FAILING)]
    passing = [f"P-{n:05d}" for n in range(PASSING)]
    rows = [(key, failing_status) for key in failing] + [(key, "paid") for key in passing]
    rows.sort(key=lambda row: row[0][2:])  # interleave both kinds
    with (root / "inbox" / "orders.csv").open("w") as out:
        out.write("order_id,status\n")
        out.writelines(f"{key},{status}\n" for key, status in rows)
    return failing, passing


def dovetail(root: Path, partner: PartnerServer, *args: str) -> tuple[int, Any]:
    """Run a ``dovetail`` command with ``--json``; returns its exit code and parsed output."""
    finished = subprocess.run(
        [str(dovetail_executable()), *args, "--json"],
        cwd=root,
        env={**os.environ, "PARTNER_URL": partner.url, "NO_COLOR": "1"},
        capture_output=True,
        timeout=100,
    )
    assert finished.returncode in (0, 3), finished.stderr.decode()[-2000:]
    return finished.returncode, json.loads(finished.stdout)


def dead_letters(root: Path, partner: PartnerServer, status: str) -> list[dict[str, Any]]:
    code, letters = dovetail(root, partner, "dlq", "list", "--status", status, "--limit", "5000")
    assert code == 0
    assert isinstance(letters, list)
    return letters


def accepted_keys(partner: PartnerServer) -> Counter[str]:
    return Counter(str(body["order_id"]) for body in partner.received_bodies())


def replay_twice(root: Path, partner: PartnerServer) -> None:
    code, first = dovetail(root, partner, "replay")
    assert code == 0, first
    assert first["selected"] == FAILING
    [run] = first["runs"]
    assert run["delivered"] == {"sink": FAILING}
    assert run["dead_lettered"] == 0
    code, second = dovetail(root, partner, "replay")
    assert code == 0
    assert second["selected"] == 0
    assert second["runs"] == []


def assert_replayed(root: Path, partner: PartnerServer, expected: list[str], step: str) -> None:
    accepted = accepted_keys(partner)
    assert sorted(accepted) == sorted(expected)
    assert set(accepted.values()) == {1}, "a key was accepted twice"
    assert dead_letters(root, partner, "open") == []
    replayed = dead_letters(root, partner, "replayed")
    assert len(replayed) == FAILING
    assert {letter["step"] for letter in replayed} == {step}
    assert {letter["status"] for letter in replayed} == {"replayed"}


@pytest.mark.slow
def test_a_thousand_lookup_misses_replayed_twice_are_delivered_once(tmp_path: Path) -> None:
    failing, passing = make_project(tmp_path, failing_status="on_hold")
    with PartnerServer(conflict_on_duplicate_key="order_id") as partner:
        code, [summary] = dovetail(tmp_path, partner, "run", "--once")
        assert code == 3
        assert summary["dead_lettered"] == FAILING
        assert summary["delivered"] == {"sink": PASSING}
        open_letters = dead_letters(tmp_path, partner, "open")
        assert len(open_letters) == FAILING
        assert {letter["reason"] for letter in open_letters} == {
            "lookup: field status: key not found in lookups/status.csv"
        }

        with (tmp_path / "lookups" / "status.csv").open("a") as table:
            table.write("on_hold,BLOCKED\n")
        replay_twice(tmp_path, partner)

        assert_replayed(tmp_path, partner, failing + passing, "lookup")
        erp_status = Counter(body["erp_status"] for body in partner.received_bodies())
        assert erp_status == {"RELEASED": PASSING, "BLOCKED": FAILING}
        answers = Counter(r.status for r in partner.requests("/sales-orders"))
    assert answers == {201: FAILING + PASSING}, "a key reached the partner twice"


@pytest.mark.slow
def test_a_thousand_partner_rejections_replayed_twice_are_delivered_once(tmp_path: Path) -> None:
    make_project(tmp_path, failing_status="paid")
    with PartnerServer(conflict_on_duplicate_key="order_id") as partner:
        # the partner refuses the first 1,000 requests (whichever messages they carry)
        partner.script("/sales-orders", [422] * FAILING)
        code, [summary] = dovetail(tmp_path, partner, "run", "--once")
        assert code == 3
        assert summary["dead_lettered"] == FAILING
        assert summary["delivered"] == {"sink": PASSING}
        refused = sorted(
            str(r.body["order_id"]) for r in partner.requests("/sales-orders") if r.status == 422
        )
        delivered_first = sorted(accepted_keys(partner))
        open_letters = dead_letters(tmp_path, partner, "open")
        assert len(open_letters) == FAILING
        assert all(letter["reason"].startswith("HTTP 422") for letter in open_letters)

        # the partner has fixed its side: the script is used up, every request is accepted
        replay_twice(tmp_path, partner)

        assert_replayed(tmp_path, partner, refused + delivered_first, "sink:sink")
        answers = Counter(r.status for r in partner.requests("/sales-orders"))
    assert len(refused) == FAILING
    assert answers == {422: FAILING, 201: FAILING + PASSING}, "a key reached the partner twice"
