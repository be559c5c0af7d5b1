"""The end-to-end demo behind ``make demo``.

It scaffolds the example project with ``dovetail init`` into ``.demo/``, starts a local partner
ERP API (OAuth2 client credentials, its own token endpoint) on 127.0.0.1, then:

1. lints and tests the flows offline;
2. runs ``orders-to-erp`` once over a CSV of web-shop orders with a few deliberately bad rows,
   delivering to the ERP API and to a SQLite warehouse table;
3. runs ``webhook-orders`` and posts one signed webhook (and one with a forged signature);
4. lists the dead letters with their reasons;
5. fixes the lookup table and replays the dead letters - duplicate-safe;
6. checks the counts against the input and prints them.

Exit status 0 only when every count matches what the input must produce.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / ".demo"
PROJECT = WORK / "web-shop"
BIN = Path(sys.executable).parent
DOVETAIL = str(BIN / "dovetail")
CLIENT_ID = "demo-client"
CLIENT_SECRET = "demo-secret-7f3a9c"
WEBHOOK_SECRET = "whsec-demo-41b8e2"


def banner(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dovetail(
    *args: str, env: dict[str, str], expect: tuple[int, ...] = (0,), quiet: bool = False
) -> str:
    if not quiet:
        print(f"$ dovetail {' '.join(args)}", flush=True)
    done = subprocess.run(
        [DOVETAIL, *args], cwd=PROJECT, env=env, capture_output=True, text=True, check=False
    )
    failed = done.returncode not in expect
    if failed or not quiet:
        print((done.stdout + (done.stderr if failed else "")).rstrip(), flush=True)
    if failed:
        raise SystemExit(f"dovetail {args[0]} exited {done.returncode}, expected {expect}")
    return done.stdout


def start_partner(port: int) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dovetail.testing.partner",
            "--port",
            str(port),
            "--client-id",
            CLIENT_ID,
            "--client-secret",
            CLIENT_SECRET,
            "--conflict-on-duplicate-key",
            "external_ref",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_for_port(port)
    return process


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def partner_requests(base: str) -> list[dict[str, object]]:
    records = httpx.get(f"{base}/_partner/requests", timeout=10).json()
    return [r for r in records if r.get("path") == "/sales-orders"]


def signed_webhook(port: int, order: dict[str, object], secret: str) -> httpx.Response:
    body = orjson.dumps(order)
    timestamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    headers = {
        "content-type": "application/json",
        "x-timestamp": timestamp,
        "x-signature": f"sha256={digest.hexdigest()}",
    }
    return httpx.post(f"http://127.0.0.1:{port}/webhooks/orders", content=body, headers=headers)


def main() -> int:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    partner_port, webhook_port = free_port(), free_port()
    base = f"http://127.0.0.1:{partner_port}"
    env = {
        **os.environ,
        "ERP_URL": base,
        "ERP_TOKEN_URL": f"{base}/oauth/token",
        "ERP_CLIENT_ID": CLIENT_ID,
        "ERP_CLIENT_SECRET": CLIENT_SECRET,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "WEBHOOK_PORT": str(webhook_port),
        "COLUMNS": os.environ.get("COLUMNS", "150"),
    }
    banner("scaffold the example project")
    subprocess.run([DOVETAIL, "init", str(PROJECT)], check=True)
    input_rows = (PROJECT / "inbox/orders/orders.csv").read_text().splitlines()[1:]

    banner(f"start the partner ERP API on {base} (OAuth2 client credentials)")
    partner = start_partner(partner_port)
    try:
        banner("lint and test the flows offline")
        dovetail("lint", env=env)
        dovetail("test", env=env)

        banner(f"run orders-to-erp once over {len(input_rows)} CSV rows")
        dovetail("run", "orders-to-erp", "--once", env=env, expect=(3,))

        banner("receive a signed webhook (and reject a forged one)")
        server = subprocess.Popen([DOVETAIL, "run", "webhook-orders"], cwd=PROJECT, env=env)
        try:
            wait_for_port(webhook_port)
            order = {
                "order_id": "WS-2001",
                "customer_name": "Katherine Johnson",
                "email": "katherine@example.com",
                "country": "us",
                "status": "paid",
                "total": "64.00",
                "currency": "USD",
                "created_at": "2026-11-24T16:00:00Z",
            }
            accepted = signed_webhook(webhook_port, order, WEBHOOK_SECRET)
            forged = signed_webhook(webhook_port, {**order, "total": "0.01"}, "wrong-secret")
            print(f"signed webhook  -> HTTP {accepted.status_code} {accepted.text}")
            print(f"forged webhook  -> HTTP {forged.status_code}")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if any(
                    r["body"].get("external_ref") == "WS-2001"  # type: ignore[union-attr]
                    for r in partner_requests(base)
                ):
                    break
                time.sleep(0.2)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)

        banner("dead letters and their reasons")
        dovetail("dlq", "list", env=env)

        banner("fix the lookup table (add the missing 'on_hold' status) and replay")
        with (PROJECT / "lookups/status.csv").open("a") as table:
            table.write("on_hold,BLOCKED,Held for a credit check\n")
        dovetail("replay", env=env, expect=(0, 3))
        dovetail("dlq", "list", env=env)

        banner("reconcile the counts with the input")
        received = partner_requests(base)
        refs = [str(r["body"]["external_ref"]) for r in received]  # type: ignore[index]
        unique = sorted(set(refs))
        with sqlite3.connect(PROJECT / "data/warehouse.db") as db:
            rows = db.execute("SELECT external_ref FROM sales_orders ORDER BY 1").fetchall()
        letters = orjson.loads(dovetail("dlq", "list", "--json", env=env, quiet=True))
        reasons = sorted(str(letter["reason"]) for letter in letters)
        expected_erp = [
            "WS-1001",
            "WS-1002",
            "WS-1003",
            "WS-1004",
            "WS-1008",
            "WS-1009",
            "WS-1010",
            "WS-2001",
        ]
        print(f"CSV rows read:                {len(input_rows)}")
        print(f"delivered to the ERP:         {len(unique)} orders {unique}")
        print(f"duplicate ERP deliveries:     {len(refs) - len(unique)}")
        print(f"rows in the warehouse table:  {len(rows)}")
        print("filtered out (zero total):    1 (WS-1006)")
        print(f"still dead-lettered:          {len(letters)}")
        for reason in reasons:
            print(f"  - {reason}")
        checks = {
            "ERP got exactly the valid orders": unique == expected_erp,
            "no duplicate deliveries": len(refs) == len(unique),
            "warehouse has the CSV's valid orders": [r[0] for r in rows] == expected_erp[:-1],
            "two rows still dead-lettered (bad e-mail, malformed row)": len(letters) == 2,
        }
        banner("result")
        for name, ok in checks.items():
            print(f"{'PASS' if ok else 'FAIL'}  {name}")
        return 0 if all(checks.values()) else 1
    finally:
        partner.send_signal(signal.SIGTERM)
        try:
            partner.wait(timeout=10)
        except subprocess.TimeoutExpired:
            partner.kill()


if __name__ == "__main__":
    sys.exit(main())
