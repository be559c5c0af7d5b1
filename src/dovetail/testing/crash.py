"""A crash harness: kill a real ``dovetail run`` at random moments, restart it, count the damage.

``CrashHarness`` runs the ``dovetail`` console script as a subprocess in a project folder,
kills it with ``SIGKILL`` at random moments (a seeded RNG), restarts it, and repeats; then it
lets one last run finish and compares what the target received with what was expected::

    from dovetail.testing.crash import CrashHarness
    from dovetail.testing.partner import PartnerServer

    with PartnerServer(conflict_on_duplicate_key="order_id") as partner:
        harness = CrashHarness(project_dir, kills=50, env={"ERP_URL": partner.url})
        report = harness.run(
            expected=order_ids,
            delivered=lambda: [body["order_id"] for body in partner.received_bodies()],
        )
    assert report.ok, report.describe()

Two modes:

- ``once=True`` (file sources): every run is ``dovetail run --once``. A run that finishes
  before it is killed ends the kill phase early (``finished_early``; the input is drained).
  The last run is ``run --once`` to completion.
- ``once=False`` (servers such as the webhook source): every run is ``dovetail run``; a run
  that exits by itself is an error. The last run serves until ``until()`` is true (for a
  webhook: the sender is done and the inbox is drained), then gets ``SIGTERM`` and must exit.

The seed comes from the ``DOVETAIL_CRASH_SEED`` environment variable, else the ``seed``
argument, else a random one; it is printed (stderr) and kept in the report, so a failing
schedule can be repeated. Each run's output goes to ``log_dir`` (default
``<project>/.dovetail/crash-logs``).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import anyio

SEED_ENV = "DOVETAIL_CRASH_SEED"
"""Environment variable that overrides the seed of the kill schedule."""

_POLL = 0.05


class CrashHarnessError(RuntimeError):
    """The harness could not carry out its plan (a run failed on its own, or timed out)."""


@dataclass(frozen=True)
class CrashReport:
    """What a crash run did and what reached the target.

    ``delivered`` counts distinct expected keys the target has; ``effects`` counts every
    delivery the target saw (repeats included). ``lost``: expected keys the target lacks;
    ``duplicated``: keys it has more than once; ``unexpected``: keys nobody expected. The
    ``*_keys`` fields hold up to 20 examples of each, sorted.
    """

    seed: int
    kills: int
    starts: int
    finished_early: bool
    exit_code: int
    expected: int
    delivered: int
    effects: int
    lost: int
    duplicated: int
    unexpected: int
    lost_keys: tuple[str, ...]
    duplicated_keys: tuple[str, ...]
    unexpected_keys: tuple[str, ...]
    crash_seconds: float
    finish_seconds: float
    log_dir: Path

    @property
    def ok(self) -> bool:
        """True when the last run succeeded and nothing was lost, repeated or unexpected."""
        return (
            self.exit_code == 0
            and self.lost == 0
            and self.duplicated == 0
            and self.unexpected == 0
            and self.delivered == self.expected
        )

    @property
    def seconds(self) -> float:
        """Wall time of the kill phase and the final run together."""
        return self.crash_seconds + self.finish_seconds

    def describe(self) -> str:
        """One paragraph with the figures and the examples of what went wrong, if anything."""
        text = (
            f"seed {self.seed} ({SEED_ENV}={self.seed} repeats it): {self.kills} kill(s) in"
            f" {self.starts} start(s) over {self.crash_seconds:.1f}s"
            f"{' (input drained early)' if self.finished_early else ''}, final run exit"
            f" {self.exit_code} after {self.finish_seconds:.1f}s; expected {self.expected},"
            f" delivered {self.delivered} ({self.effects} effects), lost {self.lost},"
            f" duplicated {self.duplicated}, unexpected {self.unexpected}"
        )
        for name, keys in (
            ("lost", self.lost_keys),
            ("duplicated", self.duplicated_keys),
            ("unexpected", self.unexpected_keys),
        ):
            if keys:
                text += f"; {name} e.g. {', '.join(keys)}"
        return text + f"; logs in {self.log_dir}"


def resolve_seed(seed: int | None = None) -> int:
    """The seed to use: ``DOVETAIL_CRASH_SEED`` if set, else ``seed``, else a random one."""
    from_env = os.environ.get(SEED_ENV, "").strip()
    if from_env:
        return int(from_env)
    if seed is not None:
        return seed
    return random.SystemRandom().randrange(2**32)


def dovetail_executable() -> Path:
    """The ``dovetail`` console script installed next to the running interpreter."""
    return Path(sys.executable).parent / "dovetail"


def listening(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``host:port`` (a ``ready`` probe)."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def inbox_drained(project_dir: Path, flow: str) -> bool:
    """True when ``flow`` has no message left in the project store's durable inbox."""
    from dovetail.api import open_store
    from dovetail.config.loader import load_project

    async def check() -> bool:
        store = await open_store(load_project(project_dir))
        try:
            return not await store.inbox_pending(flow, 1)
        finally:
            await store.close()

    return anyio.run(check)


class CrashHarness:
    """Runs ``dovetail run`` in ``project_dir``, killing it ``kills`` times at random moments.

    ``interval`` bounds the random time (seconds) a run lives before its kill, counted from
    the moment the run is *under way*: when ``ready()`` is true (e.g. ``lambda:
    listening(port)`` for a webhook) and ``activity()`` (a counter that grows while the flow
    works, such as the requests a partner received) has moved since the start, for those
    given; otherwise from the start of the process. So the kills land while messages are in
    flight rather than while Python imports modules. In server mode, give ``ready``: the last
    run gets its ``SIGTERM`` only once it is ready (before, the signal would simply end it).
    ``flows`` are passed to ``run`` (default: all flows of the project); ``env`` is added to
    the environment of every run.
    """

    def __init__(
        self,
        project_dir: Path,
        *,
        kills: int = 20,
        interval: tuple[float, float] = (0.3, 1.5),
        seed: int | None = None,
        once: bool = True,
        flows: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        activity: Callable[[], int] | None = None,
        ready: Callable[[], bool] | None = None,
        start_timeout: float = 30.0,
        finish_timeout: float = 300.0,
        executable: Path | None = None,
        log_dir: Path | None = None,
    ) -> None:
        low, high = interval
        if not 0 < low <= high:
            raise ValueError(f"interval must be 0 < low <= high, found {interval}")
        if kills < 0:
            raise ValueError("kills must not be negative")
        self.project_dir = project_dir
        self.kills = kills
        self.interval = (low, high)
        self.seed = resolve_seed(seed)
        self.once = once
        self.flows = tuple(flows)
        self.env = {**os.environ, "NO_COLOR": "1", **(env or {})}
        self.activity = activity
        self.ready = ready
        self.start_timeout = start_timeout
        self.finish_timeout = finish_timeout
        self.executable = executable or dovetail_executable()
        self.log_dir = log_dir or project_dir / ".dovetail" / "crash-logs"
        self.kills_done = 0
        self.starts = 0
        self.finished_early = False
        self._rng = random.Random(self.seed)
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        print(f"crash harness: seed {self.seed} (set {SEED_ENV} to repeat)", file=sys.stderr)

    # -- the whole plan ------------------------------------------------------------------------

    def run(
        self,
        *,
        expected: Iterable[str] | Callable[[], Iterable[str]],
        delivered: Callable[[], Iterable[str]],
        until: Callable[[], bool] | None = None,
        after_kills: Callable[[], None] | None = None,
    ) -> CrashReport:
        """Kill phase, final run, then compare ``delivered()`` (one key per effect) with
        ``expected`` (keys, or a function giving them once the final run is done).

        ``after_kills`` is called between the two phases (e.g. to tell a sender to stop
        sending new messages); ``until`` ends the final run in server mode (see ``finish``).

        Raises ``CrashHarnessError`` when a run fails by itself in server mode or the final
        run does not end in time; a final run's non-zero exit is reported, not raised.
        """
        started = time.monotonic()
        self.crash()
        if after_kills is not None:
            after_kills()
        crashed = time.monotonic()
        exit_code = self.finish(until)
        finished = time.monotonic()
        wanted = set(expected() if callable(expected) else expected)
        seen = Counter(delivered())
        lost = sorted(wanted - seen.keys())
        duplicated = sorted(key for key, count in seen.items() if count > 1)
        unexpected = sorted(seen.keys() - wanted)
        return CrashReport(
            seed=self.seed,
            kills=self.kills_done,
            starts=self.starts,
            finished_early=self.finished_early,
            exit_code=exit_code,
            expected=len(wanted),
            delivered=len(wanted & seen.keys()),
            effects=sum(seen.values()),
            lost=len(lost),
            duplicated=len(duplicated),
            unexpected=len(unexpected),
            lost_keys=tuple(lost[:20]),
            duplicated_keys=tuple(duplicated[:20]),
            unexpected_keys=tuple(unexpected[:20]),
            crash_seconds=crashed - started,
            finish_seconds=finished - crashed,
            log_dir=self.log_dir,
        )

    # -- the phases ----------------------------------------------------------------------------

    def crash(self) -> int:
        """Start, kill at a random moment, restart, until ``kills`` kills are done (or, in
        once mode, a run finishes by itself). Returns the kills done."""
        try:
            while self.kills_done < self.kills:
                process = self._start(once=self.once)
                self._wait_until_under_way(process)
                delay = self._rng.uniform(*self.interval)
                if not self._exited_within(process, delay):
                    process.send_signal(signal.SIGKILL)
                if process.wait() == -signal.SIGKILL:
                    self.kills_done += 1
                    continue
                self._ended_by_itself(process)  # raises unless a once run drained its input
                self.finished_early = True
                break
        finally:
            self._reap()
        return self.kills_done

    def finish(self, until: Callable[[], bool] | None = None) -> int:
        """The last run, never killed; returns its exit code.

        Once mode: ``run --once`` until it exits. Server mode: ``run`` until ``until()`` is
        true (checked every 0.2 s) and the run is ready, then ``SIGTERM`` (drain and stop).
        """
        if not self.once and until is None:
            raise ValueError("server mode needs an `until` condition to stop the last run")
        deadline = time.monotonic() + self.finish_timeout
        try:
            process = self._start(once=self.once)
            if until is not None and not self.once:
                self._wait_until_under_way(process, activity=False)
                while not until():
                    if process.poll() is not None:
                        self._ended_by_itself(process)
                    if time.monotonic() > deadline:
                        raise CrashHarnessError(self._explain("the final run's condition not met"))
                    time.sleep(0.2)
                process.send_signal(signal.SIGTERM)
            try:
                return process.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise CrashHarnessError(self._explain("the final run did not end")) from None
        finally:
            self._reap()

    # -- processes -----------------------------------------------------------------------------

    def _start(self, *, once: bool) -> subprocess.Popen[bytes]:
        self._reap()
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._log = (self.log_dir / f"run-{self.starts:03d}.log").open("wb")
        command = [str(self.executable), "run", *self.flows]
        if once:
            command.append("--once")
        self._process = subprocess.Popen(
            command,
            cwd=self.project_dir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self._process

    def _wait_until_under_way(
        self, process: subprocess.Popen[bytes], *, activity: bool = True
    ) -> None:
        """Wait for ``ready()`` and a move of ``activity()`` (at most ``start_timeout``)."""
        counter = self.activity if activity else None
        baseline = counter() if counter is not None else 0
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline and process.poll() is None:
            if (self.ready is None or self.ready()) and (counter is None or counter() != baseline):
                return
            time.sleep(_POLL)

    @staticmethod
    def _exited_within(process: subprocess.Popen[bytes], seconds: float) -> bool:
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return False
        return True

    def _ended_by_itself(self, process: subprocess.Popen[bytes]) -> None:
        code = process.returncode
        if self.once and code in (0, 3):
            return
        raise CrashHarnessError(self._explain(f"run {self.starts} exited by itself with {code}"))

    def _explain(self, what: str) -> str:
        log = self.log_dir / f"run-{self.starts:03d}.log"
        tail = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
        return f"{what} (seed {self.seed}, {self.kills_done} kill(s) so far); output:\n{tail}"

    def _reap(self) -> None:
        """Kill a run left behind (an error or an interrupted test) and close its log."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
