"""Canary: planted secrets and personal data never reach logs, DLQ views, traces or docs.

A project plants a ``${secret:}`` API key (environment) and password (secret file, sent with
HTTP Basic) in its config, and e-mail addresses, a Luhn-valid card number, an IBAN, a JWT and
a bearer token in its input. Its flow fails in every way: a malformed CSV row, a schema
violation, a lookup miss, a Python step raising with the payload in its message, and a
partner answering 401, 400 and 500 that echoes the credentials it received, one encoding per
answer (base64 of the secret and of the Basic ``user:secret`` pair, percent, JSON and hex).
Every log line of a real ``dovetail run --once``, every ``dlq list/show`` and ``trace``
output, the generated docs and every file the run wrote (other than the archived input) are
scanned: no planted value may appear, and no form of a secret may appear in the raw store
either (which keeps payloads, so personal data, for replay). The same project with
``detect: false`` shows that the scan finds personal data otherwise.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import random
import re
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import anyio
import pytest
from typer.testing import CliRunner

from dovetail.api import open_store, run_flow_async
from dovetail.cli.app import app
from dovetail.cli.commands.dlq import letter_view, mask_for
from dovetail.config.loader import load_flow, load_project
from dovetail.observability.detectors import luhn_valid
from dovetail.observability.logging import configure_logging
from dovetail.store.base import DeadLetterQuery
from dovetail.testing.crash import dovetail_executable
from dovetail.testing.partner import PartnerServer

FLOW = """\
flow: canary-orders
version: 1.0.0
source:
  file: {path: inbox/*.csv, format: csv, after: {move_to: archive/}}
steps:
  - validate: {schema: schemas/order.schema.json}
  - lookup: {table: lookups/customers.csv, key: customer, into: customer_name, column: name}
  - python: HOOKS.orders:check
sink:
  http:
    url: ${env:PARTNER_URL}/sales-orders
    auth: {basic: {username: canary-user, password: '${secret:CANARY_PASSWORD}'}}
    headers: {x-api-key: '${secret:CANARY_API_KEY}'}
delivery:
  retry: {attempts: 1, park_after: null}
observability:
  detect: DETECT
  log_payloads: LOG_PAYLOADS
runtime: {batch_size: 50, workers: 1}
"""

SCHEMA = {
    "type": "object",
    "properties": {"notes": {"type": "string", "maxLength": 300}},
    "required": ["order_id", "customer"],
}

HOOK = """\
def check(order):
    if order["order_id"] == "C-3":
        raise ValueError(f"cannot process {order}")
    return order
"""


def _luhn_card() -> str:
    body = "4" + "".join(random.choice("0123456789") for _ in range(14))
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


def _iban() -> str:
    bban = "".join(random.choice("0123456789") for _ in range(18))
    number = int("".join(str(int(c, 36)) for c in bban + "DE00"))
    return f"DE{98 - number % 97:02d}{bban}"


def _jwt() -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    claims = {"sub": uuid.uuid4().hex, "role": "admin"}
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.{uuid.uuid4().hex}"


USER = "canary-user"
"""The HTTP Basic user name of the canary flow."""


def encodings(label: str, value: str) -> dict[str, str]:
    """``value`` in every encoding a credential travels in, by a label naming the encoding."""
    raw = value.encode()
    std, url = base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
    percent = quote(value, safe="")
    return {
        label: value,
        f"{label} base64": std,
        f"{label} base64 unpadded": std.rstrip("="),
        f"{label} base64url": url,
        f"{label} base64url unpadded": url.rstrip("="),
        f"{label} percent": percent,
        f"{label} percent lower-case": re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), percent),
        f"{label} percent path": quote(value),
        f"{label} form": quote_plus(value),
        f"{label} json": json.dumps(value)[1:-1],
        f"{label} hex": raw.hex(),
    }


def echo_credentials() -> Callable[[dict[str, str]], str]:
    """A partner's failure answer that echoes the credentials of the request, one encoding
    per answer (in turn), as a careless partner's error page might."""
    answers = itertools.count()

    def echo(headers: dict[str, str]) -> str:
        pair = base64.b64decode(headers["authorization"].split(" ", 1)[1]).decode()
        password = pair.split(":", 1)[1]
        forms = [
            *encodings("api key", headers["x-api-key"]).values(),
            *encodings("password", password).values(),
            *encodings("basic pair", pair).values(),
        ]
        form = forms[next(answers) % len(forms)]
        return f"request rejected; you sent {form} - check it"

    return echo


ECHOES = 3 * 11
"""How many forms the partner echoes (three credentials, eleven encodings each)."""


PARTNER_ANSWERS: list[int | str] = [401, 400, 500, *[400] * ECHOES]
"""The partner's answers to the rows that reach it: all fail, each echoing credentials."""

DEAD_LETTER_STEPS = sorted(
    ["lookup", "python", "source", "validate", *["sink:sink"] * len(PARTNER_ANSWERS)]
)
"""The step of every dead letter the canary flow leaves, sorted."""


def secret_forms(canaries: Canaries) -> dict[str, str]:
    """Every encoded form of every planted secret."""
    return {
        **encodings("api key", canaries.api_key),
        **encodings("password", canaries.password),
        **encodings("basic pair", f"{USER}:{canaries.password}"),
    }


@dataclass
class Canaries:
    api_key: str
    password: str
    email: str
    other_email: str
    card: str
    iban: str
    jwt: str
    bearer: str

    def forms(self) -> dict[str, str]:
        """Every planted value, in each form it could be printed in."""
        spaced_card = " ".join(self.card[i : i + 4] for i in range(0, 16, 4))
        spaced_iban = " ".join(self.iban[i : i + 4] for i in range(0, len(self.iban), 4))
        return {
            **secret_forms(self),
            "email": self.email,
            "other email": self.other_email,
            "card": self.card,
            "spaced card": spaced_card,
            "iban": self.iban,
            "spaced iban": spaced_iban,
            "jwt": self.jwt,
            "jwt payload": self.jwt.split(".")[1],
            "bearer": self.bearer,
        }


def plant() -> Canaries:
    tag = uuid.uuid4().hex[:10]
    return Canaries(
        # characters that encodings change: / + = ? & % : " \\ and a space
        api_key=f"ak_live_{uuid.uuid4().hex}/+=?&%",
        password=f'pw-{uuid.uuid4().hex[:16]} :"\\/+',
        email=f"jane.canary.{tag}@example.com",
        other_email=f"ops-{tag}@partner.example.org",
        card=_luhn_card(),
        iban=_iban(),
        jwt=_jwt(),
        bearer=f"tok_{uuid.uuid4().hex}",
    )


def make_project(
    root: Path, canaries: Canaries, *, detect: bool, log_payloads: str = "none"
) -> None:
    hooks = f"canary_hooks_{uuid.uuid4().hex[:8]}"  # a module name unique to this project
    for folder in ("flows", "inbox", "schemas", "lookups", hooks, "secrets"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "dovetail.yaml").write_text("project: canary\nsecrets: {files: [secrets]}\n")
    (root / "secrets" / "CANARY_PASSWORD").write_text(canaries.password + "\n")
    (root / "flows" / "canary-orders.yaml").write_text(
        FLOW.replace("DETECT", "true" if detect else "false")
        .replace("HOOKS", hooks)
        .replace("LOG_PAYLOADS", log_payloads)
    )
    (root / "schemas" / "order.schema.json").write_text(json.dumps(SCHEMA))
    (root / "lookups" / "customers.csv").write_text("customer,name\nacme,Acme Ltd\n")
    (root / hooks / "__init__.py").write_text("")
    (root / hooks / "orders.py").write_text(HOOK)
    c = canaries
    spaced_card = " ".join(c.card[i : i + 4] for i in range(0, 16, 4))
    long_note = f"call {c.other_email} about card {spaced_card} " + "x" * 300
    rows = [
        "order_id,customer,email,card,iban,notes",
        # schema violation: notes too long
        f'A-1,acme,{c.email},{c.card},{c.iban},"{long_note}"',
        # lookup miss: the customer key is an e-mail address
        f"B-2,{c.email},{c.email},{c.card},{c.iban},jwt {c.jwt}",
        # the python step raises with the whole payload in its message
        f'C-3,acme,{c.email},{spaced_card},{c.iban},"Authorization: Bearer {c.bearer}"',
        # malformed: too many fields
        f"M-9,acme,{c.email},{c.card},{c.iban},{c.jwt},extra,fields",
        # the partner answers 401, 400 and 500 to these
        f"D-4,acme,{c.email},{c.card},{c.iban},token={c.bearer}",
        f"E-5,acme,{c.other_email},{c.card},{c.iban},ok",
        f"F-6,acme,{c.email},{c.card},{c.iban},{c.jwt}",
        # more answers from the partner, echoing the credentials
        *(f"G-{i},acme,{c.email},{c.card},{c.iban},echo" for i in range(ECHOES)),
    ]
    (root / "inbox" / "orders.csv").write_text("\n".join(rows) + "\n")


def dovetail(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(dovetail_executable()), *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_and_collect(
    root: Path, canaries: Canaries, partner: PartnerServer, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Run the project once in a subprocess; every text people could see, by origin.

    ``run``, ``dlq list`` and one ``dlq show`` are separate processes, as an operator runs
    them; the other views run the same command in this process (faster).
    """
    env = {**os.environ, "PARTNER_URL": partner.url, "CANARY_API_KEY": canaries.api_key}
    env.pop("DOVETAIL_STORE", None)
    partner.script("/sales-orders", PARTNER_ANSWERS)
    run = dovetail(root, env, "run", "--once")
    assert run.returncode == 3, run.stdout + run.stderr
    texts = {"run stdout": run.stdout, "run stderr": run.stderr}
    listing = dovetail(root, env, "dlq", "list", "--json")
    assert listing.returncode == 0, listing.stderr
    texts["dlq list --json"] = listing.stdout
    letters = json.loads(listing.stdout)
    steps = sorted(letter["step"] for letter in letters)
    assert steps == DEAD_LETTER_STEPS, steps
    first = dovetail(root, env, "dlq", "show", str(letters[0]["id"]), "--json")
    assert first.returncode == 0, first.stderr
    texts["dlq show (process)"] = first.stdout + first.stderr
    commands: list[list[str]] = []
    for letter in letters:
        commands.append(["dlq", "show", str(letter["id"]), "--json"])
        commands.append(["dlq", "show", str(letter["id"])])
        commands.append(["trace", letter["correlation_id"], "--json"])
        commands.append(["trace", letter["message_id"]])
    commands.append(["dlq", "list"])
    commands.append(["docs", "--out", str(root / "generated-docs")])
    monkeypatch.chdir(root)
    monkeypatch.setenv("PARTNER_URL", partner.url)
    monkeypatch.setenv("CANARY_API_KEY", canaries.api_key)
    monkeypatch.delenv("DOVETAIL_STORE", raising=False)
    runner = CliRunner()
    for args in commands:
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output[:3000])
        texts[" ".join(args)] = result.output
    shows = [
        json.loads(texts[" ".join(c)]) for c in commands if c[-1] == "--json" and c[0] == "dlq"
    ]
    assert all(show["payload"] for show in shows)
    assert any("dead_lettered" in texts[" ".join(c)] for c in commands if c[0] == "trace")
    # the store keeps payloads (personal data) for replay, but no form of a secret
    for path in (root / ".dovetail").iterdir():
        if path.is_file():
            stored = path.read_bytes().decode("utf-8", errors="replace")
            texts[f"store {path.name}"] = stored
    assert "store state.db" in texts
    # inputs and config are not outputs
    ignored = {"inbox", "archive", "flows", "schemas", "lookups", "secrets", ".dovetail"}
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        top = relative.parts[0]
        if top in ignored or top.startswith("canary_hooks_") or not path.is_file():
            continue
        if relative.name != "dovetail.yaml":
            texts[f"file {relative}"] = path.read_text(errors="replace")
    assert any(key.startswith("file generated-docs") for key in texts)
    return texts


def leaks(texts: dict[str, str], canaries: Canaries) -> list[str]:
    """Each planted value found, as ``<what> in <origin>`` (only secrets count in the store)."""
    secrets = secret_forms(canaries)
    return [
        f"{what} in {origin}"
        for origin, text in texts.items()
        for what, value in (secrets if origin.startswith("store ") else canaries.forms()).items()
        if value in text
    ]


def test_no_planted_value_reaches_any_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canaries = plant()
    make_project(tmp_path, canaries, detect=True)
    with PartnerServer(failure_body=echo_credentials()) as partner:
        texts = run_and_collect(tmp_path, canaries, partner, monkeypatch)
        sent = partner.requests("/sales-orders")
    # the partner (the intended output) did get the real values: the flow itself works
    basic = base64.b64encode(f"{USER}:{canaries.password}".encode()).decode()
    assert all(r.headers.get("authorization") == f"Basic {basic}" for r in sent)
    assert all(r.headers.get("x-api-key") == canaries.api_key for r in sent)
    # every echoed form reached the engine, and was redacted from the reasons it appears in
    assert texts["dlq list --json"].count("[REDACTED]") >= ECHOES
    lines = [line for line in texts["run stderr"].splitlines() if line.strip()]
    assert lines and all(json.loads(line) for line in lines)  # JSON log lines
    assert any("dead-lettered" in line for line in lines)
    assert leaks(texts, canaries) == []


def test_the_scan_finds_values_when_detectors_are_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canaries = plant()
    make_project(tmp_path, canaries, detect=False)
    with PartnerServer(failure_body=echo_credentials()) as partner:
        texts = run_and_collect(tmp_path, canaries, partner, monkeypatch)
    found = leaks(texts, canaries)
    assert any(item.startswith(("email", "card", "iban", "jwt")) for item in found), found
    # registered secrets are redacted whatever the detectors, in every encoding
    assert not any(item.startswith(("api key", "password", "basic pair")) for item in found)


def test_in_process_run_logs_and_views_are_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    canaries = plant()
    make_project(tmp_path, canaries, detect=True, log_payloads="masked")
    with PartnerServer(failure_body=echo_credentials()) as partner:
        partner.script("/sales-orders", PARTNER_ANSWERS)
        monkeypatch.setenv("PARTNER_URL", partner.url)
        monkeypatch.setenv("CANARY_API_KEY", canaries.api_key)
        monkeypatch.delenv("DOVETAIL_STORE", raising=False)
        monkeypatch.chdir(tmp_path)
        configure_logging(json=True)
        project = load_project(tmp_path)
        flow = load_flow(tmp_path / "flows" / "canary-orders.yaml", project)

        async def main() -> tuple[Any, list[Any]]:
            store = await open_store(project)
            try:
                summary = await run_flow_async(flow, store=store)
                return summary, await store.dead_letters(DeadLetterQuery(status=None))
            finally:
                await store.close()

        summary, letters = anyio.run(main)
    assert summary.dead_lettered == len(DEAD_LETTER_STEPS)
    assert sorted(letter.step for letter in letters) == DEAD_LETTER_STEPS
    policies = mask_for(project)
    views = [letter_view(letter, policies[letter.flow], full=True) for letter in letters]
    # the store keeps the real payload for replay; only views mask it
    assert any(canaries.email in json.dumps(letter.payload) for letter in letters)
    logs = capsys.readouterr().err
    dead = [json.loads(line) for line in logs.splitlines() if "message dead-lettered" in line]
    assert len(dead) == len(DEAD_LETTER_STEPS)
    assert all(line["payload"] for line in dead)  # logged, masked
    texts = {
        "logs": logs,
        "views": json.dumps(views),
        "reasons": json.dumps([[letter.reason, letter.detail] for letter in letters]),
        "summary": json.dumps(summary.as_dict()),
    }
    assert leaks(texts, canaries) == []
