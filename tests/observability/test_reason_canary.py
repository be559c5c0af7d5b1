"""No payload in reasons: a canary value planted in the failing field of every kind of step
failure never appears in a reason, in the journal, the DLQ listing, or the run's output.

Each flow fails one message in one way (JSONata map, sheet map with a JSONata source and a
transform, validate, lookup, filter, route, split, python). The canary is an ordinary business
value (no detector would mask it), so only reasons built without values keep it out. It is
still in the stored payload and the masked ``dlq show`` detail, where values belong.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from dovetail.cli.app import app

runner = CliRunner()

FLOWS = {
    "map-jsonata": (
        'map: {jsonata: \'{"order_date": $toMillis(order_date), "total": $number(total)}\'}',
        {"order_date": "{canary}", "total": "1"},
        "map: field order_date: invalid date",
    ),
    "map-number": (
        'map: {jsonata: \'{"id": id, "total": $number(total)}\'}',
        {"id": 1, "total": "{canary}"},
        "map: field total: not a number",
    ),
    "map-error": (
        'map: {jsonata: \'{"id": $error("bad order " & id)}\'}',
        {"id": "{canary}"},
        "map: field id: rejected by $error()",
    ),
    "sheet-expression": (
        "map: {sheet: mappings/expression.csv}",
        {"n": "{canary}"},
        "map: field n: not a number (source $number(n))",
    ),
    "sheet-transform": (
        "map: {sheet: mappings/transform.csv}",
        {"d": "{canary}"},
        "map: field d: date: value does not match '%Y-%m-%d' (source d)",
    ),
    "validate": (
        "validate: {schema: schemas/strict.schema.json}",
        {"id": "{canary}", "{canary}": 1},
        None,
    ),
    "lookup": (
        "lookup: {table: lookups/codes.csv, key: code, into: name}",
        {"code": "{canary}"},
        "lookup: field code: key not found in lookups/codes.csv",
    ),
    "filter": ("filter: total > 0", {"total": ["{canary}"]}, None),
    "route": (
        "route:\n      routes:\n        - {when: 'total * 2 > 1', to: [sink]}",
        {"total": "{canary}"},
        "route: not a number",
    ),
    "split": (
        "split: {path: lines, include: {n: $number(n)}}",
        {"lines": [{}], "n": "{canary}"},
        None,
    ),
    "python": ("python: hooks.checks:reject", {"id": "{canary}"}, None),
}

HOOK = """\
def reject(order):
    raise ValueError("cannot process order " + str(order["id"]))
"""


@pytest.fixture
def failing(project: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    canary = f"CANARY{uuid.uuid4().hex[:10]}"
    (project / "mappings").mkdir()
    (project / "mappings" / "expression.csv").write_text(
        "target,source,transform,required,note\nn,$number(n),,,\n"
    )
    (project / "mappings" / "transform.csv").write_text(
        "target,source,transform,required,note\nd,d,date:%Y-%m-%d>%d.%m.%Y,,\n"
    )
    (project / "schemas").mkdir()
    (project / "schemas" / "strict.schema.json").write_text(
        json.dumps(
            {
                "type": "object",
                "properties": {"id": {"type": "integer"}},
                "additionalProperties": False,
            }
        )
    )
    (project / "lookups").mkdir()
    (project / "lookups" / "codes.csv").write_text("code,name\nA,Alpha\n")
    (project / "hooks").mkdir()
    (project / "hooks" / "__init__.py").write_text("")
    (project / "hooks" / "checks.py").write_text(HOOK)
    for name, (step, record, _) in FLOWS.items():
        (project / "in" / name).mkdir(parents=True)
        planted = json.loads(json.dumps(record).replace("{canary}", canary))
        (project / "in" / name / "one.jsonl").write_text(json.dumps(planted) + "\n")
        (project / "flows" / f"{name}.yaml").write_text(
            f"flow: {name}\n"
            f"source: {{file: {{path: in/{name}/*.jsonl, format: jsonl}}}}\n"
            f"steps:\n  - {step}\n"
            f"sink: {{file: {{path: out/{name}.jsonl, format: jsonl}}}}\n"
        )
    monkeypatch.chdir(project)
    return project, canary


def _stdout(args: list[str], code: int = 0) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    return result.output


def test_no_reason_anywhere_quotes_the_failing_value(failing: tuple[Path, str]) -> None:
    _, canary = failing
    run_output = _stdout(["run", "--once", "--json"], code=3)
    letters: list[dict[str, Any]] = orjson.loads(_stdout(["dlq", "list", "--json"]))

    assert sorted(letter["flow"] for letter in letters) == sorted(FLOWS)
    for letter in letters:
        expected = FLOWS[letter["flow"]][2]
        if expected is not None:
            assert letter["reason"] == expected
        assert letter["reason"].startswith(f"{letter['step']}: ")
    assert canary not in run_output  # summaries, reasons and log lines of the run
    assert canary not in json.dumps(letters)
    assert canary not in _stdout(["dlq", "list"])
    for letter in letters:
        journey = _stdout(["trace", letter["message_id"], "--json"])
        assert canary not in journey
        assert "dead_lettered" in journey

    shown = orjson.loads(_stdout(["dlq", "show", str(letters[0]["id"]), "--json"]))
    assert canary in json.dumps(shown["payload"])  # values belong in the payload view
