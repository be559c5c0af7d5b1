"""The crash harness itself, driving a stand-in for ``dovetail`` (a small shell script).

The stand-in records each start, serves until it is killed, and exits when the file
``finish`` exists (once mode) or on SIGTERM (server mode), so the harness's counting, seed
handling and phase logic are checked in a second, without a real flow.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dovetail.testing.crash import SEED_ENV, CrashHarness, CrashHarnessError, resolve_seed

STAND_IN = """\
#!/bin/sh
echo "$*" >> starts.txt
echo $$ >> pids.txt
trap 'exit 0' TERM
while [ ! -e finish ]; do
  if [ -e crash ]; then echo "boom: the store is gone"; exit 1; fi
  sleep 0.02
done
exit 0
"""


@pytest.fixture
def stand_in(tmp_path: Path) -> Path:
    script = tmp_path / "dovetail-stand-in"
    script.write_text(STAND_IN)
    script.chmod(0o755)
    return script


def harness(tmp_path: Path, stand_in: Path, **options: object) -> CrashHarness:
    settings: dict[str, object] = {"kills": 3, "interval": (0.05, 0.1), "seed": 7}
    settings.update(options)
    return CrashHarness(tmp_path, executable=stand_in, **settings)  # type: ignore[arg-type]


def test_seed_comes_from_the_environment_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SEED_ENV, raising=False)
    assert resolve_seed(5) == 5
    assert isinstance(resolve_seed(None), int)
    monkeypatch.setenv(SEED_ENV, "42")
    assert resolve_seed(5) == 42


def test_kills_restarts_then_finishes_and_counts_what_went_wrong(
    tmp_path: Path, stand_in: Path
) -> None:
    crash = harness(tmp_path, stand_in, flows=["orders"])
    report = crash.run(
        expected=["a", "b", "c"],
        delivered=lambda: ["a", "b", "b", "x"],
        after_kills=lambda: (tmp_path / "finish").touch(),
    )
    assert (report.kills, report.starts, report.exit_code) == (3, 4, 0)
    assert (report.expected, report.delivered, report.effects) == (3, 2, 4)
    assert (report.lost, report.duplicated, report.unexpected) == (1, 1, 1)
    assert (report.lost_keys, report.duplicated_keys, report.unexpected_keys) == (
        ("c",),
        ("b",),
        ("x",),
    )
    assert not report.ok
    assert report.seed == 7
    assert "seed 7" in report.describe() and "lost e.g. c" in report.describe()
    assert (tmp_path / "starts.txt").read_text().splitlines() == ["run orders --once"] * 4
    assert len(list(report.log_dir.glob("run-*.log"))) == 4


def test_same_seed_same_kill_schedule(tmp_path: Path, stand_in: Path) -> None:
    first, second = harness(tmp_path, stand_in, seed=11), harness(tmp_path, stand_in, seed=11)
    assert [first._rng.random() for _ in range(5)] == [second._rng.random() for _ in range(5)]


def test_a_once_run_that_drains_its_input_ends_the_kill_phase(
    tmp_path: Path, stand_in: Path
) -> None:
    (tmp_path / "finish").touch()
    report = harness(tmp_path, stand_in).run(expected=["a"], delivered=lambda: ["a"])
    assert report.finished_early
    assert (report.kills, report.starts) == (0, 2)
    assert report.ok


def test_server_mode_stops_the_last_run_with_sigterm_once_the_condition_holds(
    tmp_path: Path, stand_in: Path
) -> None:
    crash = harness(tmp_path, stand_in, once=False, kills=2)
    polls: list[int] = []

    def until() -> bool:
        polls.append(1)
        return len(polls) >= 3

    report = crash.run(expected=[], delivered=list, until=until)
    assert (report.kills, report.starts, report.exit_code) == (2, 3, 0)
    assert (tmp_path / "starts.txt").read_text().splitlines() == ["run"] * 3
    with pytest.raises(ValueError, match="until"):
        crash.finish()


def test_a_server_run_that_exits_by_itself_is_an_error(tmp_path: Path, stand_in: Path) -> None:
    (tmp_path / "crash").touch()
    crash = harness(tmp_path, stand_in, once=False)
    with pytest.raises(CrashHarnessError, match="exited by itself with 1") as failure:
        crash.crash()
    assert "boom: the store is gone" in str(failure.value)
    assert crash.kills_done == 0


def test_an_interrupted_harness_leaves_no_process_behind(tmp_path: Path, stand_in: Path) -> None:
    def interrupt() -> int:
        if (tmp_path / "pids.txt").exists():
            raise KeyboardInterrupt
        return 0

    crash = harness(tmp_path, stand_in, activity=interrupt)
    with pytest.raises(KeyboardInterrupt):
        crash.crash()
    [pid] = (tmp_path / "pids.txt").read_text().split()
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)
