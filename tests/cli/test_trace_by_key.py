"""Finding a message by what the user knows, repeats instead of duplicate dead letters, and a
replay that shows as delivered: the command line against a real store (SQLite, PostgreSQL)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from dovetail.cli.app import app
from tests.store.conftest import fresh_postgres_url  # noqa: F401  (fixture)

runner = CliRunner()

FLOW = """\
flow: coded
source: {file: {path: in/*.jsonl, format: jsonl}}
steps:
  - lookup: {table: lookups/codes.csv, key: code, into: name, on_missing: dead_letter}
sink: {file: {path: out/coded.jsonl, format: jsonl}}
delivery: {idempotency_key: id}
observability: {trace_keys: [ref, customer.id]}
"""

ORDERS = (
    '{"id": 1, "ref": "ORD-00001", "code": "A", "customer": {"id": "C-7"}}\n'
    '{"id": 2, "ref": "ORD-00257", "code": "B", "customer": {"id": "C-9"}}\n'
)


@pytest.fixture(params=["sqlite", "postgresql"])
def coded(request: pytest.FixtureRequest, project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose flow dead-letters code B until the lookup table learns it."""
    if request.param == "postgresql":
        url = request.getfixturevalue("fresh_postgres_url")
        monkeypatch.setenv("DOVETAIL_STORE", url)
    (project / "lookups").mkdir()
    (project / "lookups" / "codes.csv").write_text("code,name\nA,Alpha\n")
    (project / "in").mkdir()
    (project / "in" / "monday.jsonl").write_text(ORDERS)
    (project / "flows" / "coded.yaml").write_text(FLOW)
    monkeypatch.chdir(project)
    return project


def _json(args: list[str], code: int = 0) -> Any:
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    return orjson.loads(result.stdout)


def _run_once() -> None:
    result = runner.invoke(app, ["run", "--once", "--json"])
    assert result.exit_code == 3, result.output


def test_the_same_file_dropped_twice_leaves_one_entry_with_a_repeat(coded: Path) -> None:
    _run_once()
    shutil.copy(coded / "in" / "monday.jsonl", coded / "in" / "tuesday.jsonl")
    _run_once()

    (entry,) = _json(["dlq", "list", "--json"])
    assert entry["repeats"] == 1
    assert entry["idempotency_key"] == "2"
    assert entry["source_position"] == "in/monday.jsonl:2"
    listing = runner.invoke(app, ["dlq", "list"], env={"COLUMNS": "200"})
    assert "repeats" in listing.output
    shown = _json(["dlq", "show", str(entry["id"]), "--json"])
    assert [h.get("repeat", False) for h in shown["history"]] == [False, True]

    assert _json(["replay", "--json"], code=3)["selected"] == 1  # fails again: same entry
    assert [e["id"] for e in _json(["dlq", "list", "--json"])] == [entry["id"]]
    (coded / "lookups" / "codes.csv").write_text("code,name\nA,Alpha\nB,Beta\n")
    fixed = _json(["replay", "--json"])
    assert fixed["selected"] == 1 and fixed["runs"][0]["delivered"] == {"sink": 1}
    lines = (coded / "out" / "coded.jsonl").read_text().splitlines()
    assert sorted(orjson.loads(line)["ref"] for line in lines) == ["ORD-00001", "ORD-00257"]


@pytest.mark.parametrize("key", ["ORD-00257", "C-9", "2"])
def test_trace_finds_a_message_by_a_business_key(coded: Path, key: str) -> None:
    _run_once()
    trace = _json(["trace", key, "--json"])
    (message,) = trace["messages"]
    assert message["outcome"] == "dead_lettered"
    assert [e["event"] for e in message["events"]] == ["received", "dead_lettered"]
    assert message["events"][1]["position"] == "in/monday.jsonl:2"
    assert message["events"][1]["dead_letter"] is not None


def test_an_unknown_key_finds_nothing(coded: Path) -> None:
    _run_once()
    result = runner.invoke(app, ["trace", "ORD-99999"])
    assert result.exit_code == 1
    assert "idempotency key" in result.output


def test_trace_after_a_successful_replay_says_delivered(coded: Path) -> None:
    _run_once()
    (coded / "lookups" / "codes.csv").write_text("code,name\nA,Alpha\nB,Beta\n")
    _json(["replay", "--json"])

    (message,) = _json(["trace", "ORD-00257", "--json"])["messages"]
    assert message["outcome"] == "delivered"
    events = [(e["event"], e["step"]) for e in message["events"]]
    assert events == [
        ("received", "source"),
        ("dead_lettered", "lookup"),
        ("replayed", "dlq"),
        ("delivered", "sink:sink"),
    ]
    (entry,) = _json(["dlq", "list", "--status", "all", "--json"])
    assert message["events"][2]["replay_of"] == entry["id"] == message["events"][1]["dead_letter"]
    table = runner.invoke(app, ["trace", "ORD-00257"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert f"dead letter #{entry['id']} re-driven" in table.output
    assert "delivered after" in table.output


def test_a_repeat_is_shown_as_one_in_the_trace(coded: Path) -> None:
    _run_once()
    shutil.copy(coded / "in" / "monday.jsonl", coded / "in" / "tuesday.jsonl")
    _run_once()
    messages = _json(["trace", "ORD-00257", "--json"])["messages"]
    assert len(messages) == 2
    first, second = (m["events"][1] for m in messages)
    assert first["dead_letter"] == second["dead_letter"]
    assert (first["repeat"], second["repeat"]) == (False, True)


def test_a_masked_path_is_refused_as_a_trace_key(project: Path) -> None:
    (project / "flows" / "coded.yaml").write_text(
        FLOW.replace(
            "observability: {trace_keys: [ref, customer.id]}",
            "observability:\n  mask: [customer.id]\n  trace_keys: [ref, customer.id]",
        )
    )
    (project / "lookups").mkdir()
    (project / "lookups" / "codes.csv").write_text("code,name\nA,Alpha\n")
    result = runner.invoke(app, ["lint", str(project / "flows")])
    assert result.exit_code == 2, result.output
    assert "coded.yaml:" in result.output and "customer.id is masked" in result.output
