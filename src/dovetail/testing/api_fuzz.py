"""Schemathesis against a real ``dovetail run`` of an ``api`` flow (``make fuzz-api``).

The project is copied to a temporary folder (its own store), the flow is started as a
process with a known API key, and schemathesis (``--checks all``, valid and invalid data)
sends it requests in rounds of ``--max-examples`` until at least ``--requests`` were made
(or a round failed). Then two rounds send a wrong key and no key. The run fails on:

- any schemathesis failure (a 5xx is one: ``not_a_server_error``);
- the ``dovetail run`` process exiting, before or during the rounds, or not with 0 on SIGTERM;
- any 2xx answer to a request whose key was wrong or missing;
- fewer requests made than asked for.

Usage: ``python -m dovetail.testing.api_fuzz examples/api [--requests 10000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from dovetail.testing.crash import dovetail_executable, listening

GOOD_KEY = "fuzz-key-7f3a9c2e51d04b86"
WRONG_KEY = "fuzz-key-7f3a9c2e51d04b87"
SHOWN_PROBLEMS = 30


@dataclass
class FuzzOutcome:
    """What the rounds found; ``problems`` empty means the run passed."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    log_tail: str = ""
    """The end of the ``dovetail run`` output when the run failed."""


@dataclass(frozen=True)
class FuzzTarget:
    """The flow to start and how its operation is reached."""

    project: Path
    spec: str = "schemas/orders-api.yaml"
    key_header: str = "X-API-Key"
    key_env: str = "ORDERS_API_KEY"
    port_env: str = "ORDERS_API_PORT"


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def schemathesis_round(
    target: FuzzTarget,
    url: str,
    har: Path,
    *,
    headers: Sequence[str],
    checks: str,
    max_examples: int,
    seed: int,
    extra: Sequence[str] = (),
) -> tuple[int, str]:
    """One ``schemathesis run`` writing every request to ``har``; its exit code and output."""
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        str(target.project / target.spec),
        "--url",
        url,
        "--checks",
        checks,
        "--max-examples",
        str(max_examples),
        "--seed",
        str(seed),
        "--request-timeout",
        "20",
        "--no-color",
        "--report",
        "har",
        "--report-har-path",
        str(har),
        "--generation-database",
        "none",
        "--output-sanitize",  # the HAR must show the key each request was sent with
        "false",
        *[part for header in headers for part in ("--header", header)],
        *extra,
    ]
    # its working folder is where schemathesis leaves its own state
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=har.parent)
    return done.returncode, done.stdout + done.stderr


def read_har(har: Path, key_header: str) -> list[tuple[int, str | None, str]]:
    """``(status, key sent or None, "METHOD url")`` of every request in a HAR file."""
    if not har.is_file():
        return []
    entries = json.loads(har.read_text(encoding="utf-8"))["log"]["entries"]
    found = []
    for entry in entries:
        request = entry["request"]
        sent = {h["name"].lower(): h["value"] for h in request.get("headers", [])}
        where = f"{request['method']} {request['url']}"
        found.append((int(entry["response"]["status"]), sent.get(key_header.lower()), where))
    return found


@dataclass(frozen=True)
class FuzzPlan:
    """How much to send: at least ``requests``, in rounds of ``max_examples`` run ``parallel``
    at a time, within ``budget`` seconds."""

    requests: int = 10_000
    max_examples: int = 1_000
    parallel: int = 2
    budget: float = 900.0


def fuzz(target: FuzzTarget, plan: FuzzPlan) -> FuzzOutcome:
    """Start the flow, run the rounds, stop it; see the module docstring for what fails."""
    outcome = FuzzOutcome()
    work = Path(tempfile.mkdtemp(prefix="dovetail-fuzz-"))
    project = work / "project"
    shutil.copytree(
        target.project, project, ignore=shutil.ignore_patterns(".dovetail", "data", "*.har")
    )
    copy = FuzzTarget(project, target.spec, target.key_header, target.key_env, target.port_env)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, target.key_env: GOOD_KEY, target.port_env: str(port), "NO_COLOR": "1"}
    log_path = work / "run.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(dovetail_executable()), "run"],
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_listening(process, port)
            _rounds(copy, url, work, process, outcome, plan)
        except RuntimeError as exc:
            outcome.problems.append(str(exc))
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
            if code != 0:
                outcome.problems.append(f"dovetail run ended with exit code {code} on SIGTERM")
    if outcome.problems:
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-4000:]
        outcome.log_tail = f"dovetail run output (end), kept in {work}:\n{tail}"
    else:
        shutil.rmtree(work, ignore_errors=True)
    return outcome


def _wait_listening(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 60
    while not listening(port):
        if process.poll() is not None:
            raise RuntimeError(f"dovetail run exited with code {process.returncode} at start")
        if time.monotonic() > deadline:
            raise RuntimeError("dovetail run did not listen within 60 s")
        time.sleep(0.1)


def _rounds(
    target: FuzzTarget,
    url: str,
    work: Path,
    process: subprocess.Popen[bytes],
    outcome: FuzzOutcome,
    plan: FuzzPlan,
) -> None:
    started = time.monotonic()
    good = [f"{target.key_header}: {GOOD_KEY}"]
    seed = 0
    with ThreadPoolExecutor(plan.parallel) as pool:
        while outcome.requests < plan.requests and not outcome.problems:
            if time.monotonic() - started > plan.budget:
                raise RuntimeError(
                    f"only {outcome.requests} of {plan.requests} requests in {plan.budget:.0f} s"
                )
            rounds = [
                Round(f"valid key, seed {seed + n}", good, "all", plan.max_examples, seed + n)
                for n in range(plan.parallel)
            ]
            seed += plan.parallel
            for done in pool.map(lambda r: _round(target, url, work, r), rounds):
                _judge(done, outcome, process)
        quarter = max(1, plan.max_examples // 4)
        wrong = [f"{target.key_header}: {WRONG_KEY}"]
        without = ("--generation-with-security-parameters", "false")
        rounds = [
            Round("wrong key", wrong, "not_a_server_error", quarter, seed),
            Round("no key", [], "not_a_server_error", quarter, seed + 1, without),
        ]
        for done in pool.map(lambda r: _round(target, url, work, r), rounds):
            _judge(done, outcome, process)


@dataclass(frozen=True)
class Round:
    """One schemathesis run: the headers it sends, its checks and its size."""

    name: str
    headers: list[str]
    checks: str
    max_examples: int
    seed: int
    extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoundResult:
    """What one round did: its exit code and output, and every request it made."""

    round: Round
    code: int
    output: str
    made: list[tuple[int, str | None, str]]
    seconds: float


def _round(target: FuzzTarget, url: str, work: Path, plan: Round) -> RoundResult:
    har = work / f"round-{plan.seed}.har"
    began = time.monotonic()
    code, output = schemathesis_round(
        target,
        url,
        har,
        headers=plan.headers,
        checks=plan.checks,
        max_examples=plan.max_examples,
        seed=plan.seed,
        extra=plan.extra,
    )
    made = read_har(har, target.key_header)
    return RoundResult(plan, code, output, made, time.monotonic() - began)


def _judge(done: RoundResult, outcome: FuzzOutcome, process: subprocess.Popen[bytes]) -> None:
    name = done.round.name
    outcome.requests += len(done.made)
    print(f"round {name}: {len(done.made)} requests in {done.seconds:.0f} s, exit {done.code}")
    for status, key, where in done.made:
        outcome.statuses[status] += 1
        if 200 <= status < 300 and key != GOOD_KEY:
            shown = "no key" if key is None else "a wrong key"
            outcome.problems.append(f"{status} to {where} sent with {shown}")
        if status >= 500:
            outcome.problems.append(f"{status} to {where}")
    if done.code != 0:
        outcome.problems.append(f"schemathesis round '{name}' failed:\n{done.output[-6000:]}")
    if process.poll() is not None:
        raise RuntimeError(f"dovetail run exited with code {process.returncode} during '{name}'")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: exit 0 when the run passed, 1 with every problem printed otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("project", type=Path, help="the example project serving the operation")
    parser.add_argument("--requests", type=int, default=10_000, help="fewest requests to make")
    parser.add_argument("--max-examples", type=int, default=1_000, help="per schemathesis round")
    parser.add_argument("--parallel", type=int, default=2, help="rounds run at the same time")
    parser.add_argument("--budget", type=float, default=900.0, help="seconds for the rounds")
    args = parser.parse_args(argv)
    began = time.monotonic()
    plan = FuzzPlan(args.requests, args.max_examples, args.parallel, args.budget)
    outcome = fuzz(FuzzTarget(args.project.resolve()), plan)
    statuses = ", ".join(f"{status}: {count}" for status, count in sorted(outcome.statuses.items()))
    seconds = time.monotonic() - began
    print(f"{outcome.requests} requests in {seconds:.0f} s ({statuses})")
    for problem in outcome.problems[:SHOWN_PROBLEMS]:
        print(f"FAIL {problem}", file=sys.stderr)
    if len(outcome.problems) > SHOWN_PROBLEMS:
        print(f"FAIL ... {len(outcome.problems) - SHOWN_PROBLEMS} more", file=sys.stderr)
    if outcome.log_tail:
        print(outcome.log_tail, file=sys.stderr)
    return 1 if outcome.problems else 0


if __name__ == "__main__":
    sys.exit(main())
