"""Every YAML and shell example in README.md and docs/ still does what the docs say it does.

YAML blocks are loaded as the file they show, in a project made by ``dovetail init`` with the
files the examples name laid over it (tests/docs_fixtures/): a flow (loaded and linted,
governance errors included), flow sections (completed with a placeholder source or sink and
loaded against the flow model; a component example on a reference page is put in its section),
``dovetail.yaml``, an environment file, a reconciliation file, a test case or a mapping sheet.
A block marked ``fragment`` is a piece of a file and is not checked on its own; any other block
must be one of these.

Shell blocks run their ``dovetail`` commands in-process, in order, in a fresh copy of that
project (with the ``cd`` and ``export`` lines around them, and the test partner when the page
starts one): each must end without a usage or configuration error (exit 2) and without a
traceback, or with the exit code the block is marked with (``exit: 2`` for an error shown on
purpose). Blocks that need a partner, a server or earlier state say so (``needs: …``) and are
skipped with that reason. tests/docs_blocks.py describes the marks.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from dovetail.cli.app import app
from dovetail.config.loader import load_environment, load_flow, load_project
from dovetail.config.model import EnvironmentFile, FlowFile, ProjectSettings
from dovetail.errors import ConfigError
from dovetail.governance.check import check_flows
from dovetail.mapping.sheet import load_sheet
from dovetail.reconcile.config import load_reconciliation
from dovetail.testing.cases import load_case
from dovetail.testing.partner import PartnerServer
from tests.docs_blocks import (
    ROOT,
    SHELLS,
    CodeBlock,
    code_blocks,
    command_lines,
    doc_files,
    invocations,
    partner_options,
)

BLOCKS = [block for path in doc_files() for block in code_blocks(path)]
YAML_BLOCKS = [b for b in BLOCKS if b.lang in {"yaml", "yml"}]
SHELL_BLOCKS = [
    b
    for b in BLOCKS
    if b.lang in SHELLS
    and any(i.words[:1] == ["dovetail"] for c in command_lines(b) for i in invocations(c))
]
FLOW_KEYS = frozenset(FlowFile.model_fields)
PROJECT_KEYS = frozenset(ProjectSettings.model_fields)
ENVIRONMENT_KEYS = frozenset(EnvironmentFile.model_fields)
PLACEHOLDER_SOURCE = "source:\n  file: {path: inbox/*.csv, format: csv}\n"
PLACEHOLDER_FILE = "file: {path: out/docs-example.jsonl, format: jsonl}"
PLACEHOLDER_SINK = f"sink:\n  {PLACEHOLDER_FILE}\n"
USAGE_ERROR = re.compile(
    r"No such (option|command)|Missing (argument|option)|Invalid value"
    r"|unexpected extra argument|Usage: dovetail"
)
FIXTURES = Path(__file__).parent / "docs_fixtures"
runner = CliRunner()


@pytest.fixture(scope="session")
def scaffold(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project made by ``dovetail init``; tests work on copies of it."""
    root = tmp_path_factory.mktemp("docs") / "project"
    made = runner.invoke(app, ["init", str(root)])
    assert made.exit_code == 0, made.output
    return root


@pytest.fixture
def project(scaffold: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh copy of the scaffolded project, as the working directory; the project's own
    modules (python steps) are imported from this copy and forgotten afterwards."""
    root = tmp_path / "project"
    shutil.copytree(scaffold, root)
    shutil.copytree(FIXTURES, root, dirs_exist_ok=True)
    monkeypatch.chdir(root)
    for name in [n for n in os.environ if n.startswith(("DOVETAIL_", "ERP_"))]:
        monkeypatch.delenv(name)
    for name in [m for m in sys.modules if m == "hooks" or m.startswith("hooks.")]:
        monkeypatch.delitem(sys.modules, name)  # python steps import from this copy
    yield root
    for name in [m for m in sys.modules if m == "hooks" or m.startswith("hooks.")]:
        del sys.modules[name]  # imported from this copy, which is gone after the test


def problems_of(error: ConfigError, block: CodeBlock, shift: int = 0) -> str:
    """The problems, each placed at its line in the Markdown file."""
    return "\n".join(
        f"{block.path.relative_to(ROOT)}:{block.line + p.line - shift}:{p.col}: {p.message}"
        for p in error.problems
    )


def component_kind(block: CodeBlock) -> str | None:
    """``source``, ``sink`` or ``step`` for an example on a component's reference page."""
    parts = block.path.relative_to(ROOT).parts
    if parts[:2] != ("docs", "reference") or len(parts) < 4:
        return None
    return {"sources": "source", "sinks": "sink", "steps": "step"}.get(parts[2])


def as_flow_part(block: CodeBlock) -> tuple[str, int]:
    """The block as flow sections (a component example wrapped in its section) and how many
    lines the wrapping put before it."""
    kind = component_kind(block)
    indented = "".join(f"    {line}\n" for line in block.text.splitlines())
    if kind == "step":
        return "steps:\n  -\n" + indented, 2
    if kind is not None:
        return f"{kind}:\n" + indented, 1
    return block.text, 0


def route_targets(steps: Any) -> set[str]:
    """The sink names that the ``route`` steps among ``steps`` send to."""
    names: set[str] = set()
    for step in steps if isinstance(steps, list) else []:
        route = step.get("route") if isinstance(step, dict) else None
        if not isinstance(route, dict):
            continue
        chosen = [r.get("to") for r in route.get("routes", []) if isinstance(r, dict)]
        for to in [*chosen, route.get("otherwise")]:
            names.update([to] if isinstance(to, str) else to if isinstance(to, list) else [])
    names.discard("drop")
    return names


def check_flow_part(text: str, root: Path) -> None:
    """Load flow sections completed with a placeholder source or sink, whichever is missing."""
    keys = set(YAML(typ="safe").load(text))
    if "source" not in keys:
        text += PLACEHOLDER_SOURCE
    targets = sorted(route_targets(YAML(typ="safe").load(text).get("steps")))
    if targets and not keys & {
        "sink",
        "sinks",
    }:  # a route example: a placeholder sink under each name it routes to
        text += "sinks:\n" + "".join(f"  {name}: {{{PLACEHOLDER_FILE}}}\n" for name in targets)
    elif not keys & {"sink", "sinks"}:
        text += PLACEHOLDER_SINK
    path = root / "flows" / "docs-example.yaml"
    path.write_text(text + "flow: docs-example\n", encoding="utf-8")
    load_flow(path, load_project(root), strict=False)


def check_flow(block: CodeBlock, name: str, root: Path) -> None:
    """Load a whole flow and lint it: configuration and governance errors both fail."""
    path = root / "flows" / f"{name}.yaml"
    path.write_text(block.text, encoding="utf-8")
    project = load_project(root)
    flow = load_flow(path, project, strict=False)
    errors = [f for f in check_flows(project, [flow]) if f.severity == "error"]
    assert not errors, "\n".join(f"{block.where}: {f.message} [{f.rule}]" for f in errors)


def check_file(block: CodeBlock, keys: set[str], root: Path) -> None:
    """Load a block that is a whole project file other than a flow."""
    target = root / "docs-example.yaml"
    target.write_text(block.text, encoding="utf-8")
    if {"source", "target", "key"} <= keys:
        load_reconciliation(target, load_project(root), strict=False)
    elif {"input", "expect"} <= keys:  # beside the scaffold's own cases and their files
        case = root / "tests" / "orders-to-erp" / "docs-example.yaml"
        case.write_text(block.text, encoding="utf-8")
        load_case(case, "orders-to-erp", block.where)
    elif "fields" in keys:
        load_sheet(target, name=block.where)
    elif keys <= ENVIRONMENT_KEYS:
        (root / "environments" / "docs-example.yaml").write_text(block.text, encoding="utf-8")
        load_environment(load_project(root), "docs-example")
    else:
        (root / "dovetail.yaml").write_text(block.text, encoding="utf-8")
        load_project(root)


def flow_part(keys: set[str]) -> bool:
    return bool(keys) and keys <= FLOW_KEYS - {"flow"}


def other_file(keys: set[str]) -> bool:
    return bool(keys) and (
        {"source", "target", "key"} <= keys
        or {"input", "expect"} <= keys
        or keys == {"description", "fields"}
        or keys == {"fields"}
        or keys <= ENVIRONMENT_KEYS
        or keys <= PROJECT_KEYS
    )


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=[b.where for b in YAML_BLOCKS])
def test_yaml_example_loads_as_the_file_it_shows(block: CodeBlock, project: Path) -> None:
    if block.fragment:
        pytest.skip("marked as a fragment of a file")
    text, shift = as_flow_part(block)
    data = YAML(typ="safe").load(text)
    keys = set(data) if isinstance(data, dict) else set()
    checks: list[tuple[Callable[[], None], int]] = []
    if "flow" in keys and keys <= FLOW_KEYS:
        checks.append((lambda: check_flow(block, str(data["flow"]), project), 0))
    if flow_part(keys):
        checks.append((lambda: check_flow_part(text, project), shift))
    if other_file(keys):
        checks.append((lambda: check_file(block, keys, project), 0))
    if not checks:
        pytest.fail(
            f"{block.where}: not a flow, flow sections, dovetail.yaml, an environment, a"
            f" reconciliation, a test case or a mapping sheet (keys {sorted(keys)}); mark a"
            " piece of a file ```yaml fragment"
        )
    failures: list[str] = []
    for check, offset in checks:  # a block that reads as several kinds passes as any one
        try:
            check()
            return
        except ConfigError as exc:
            failures.append(problems_of(exc, block, offset))
    pytest.fail("\n".join(failures))


def run_command(words: list[str], env: dict[str, str], expected: int | None) -> str | None:
    """Run one ``dovetail`` command line in-process; the complaint, or ``None`` when it ran
    as the docs say: with the ``expected`` exit code, else without a usage or configuration
    error (exit 2)."""
    result = runner.invoke(app, words[1:], env=env or None)
    output = result.output
    if expected is not None and result.exit_code != expected:
        return f"exit {result.exit_code}, the docs show {expected}:\n{output[-1500:]}"
    if expected is None and result.exit_code == 2:
        kind = "the command line" if USAGE_ERROR.search(output) else "configuration"
        return f"refused by {kind} (exit 2):\n{output[-1500:]}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return f"raised {result.exception!r} (exit {result.exit_code}):\n{output[-1500:]}"
    if "Traceback (most recent call last)" in output:
        return f"printed a traceback (exit {result.exit_code}):\n{output[-1500:]}"
    return None


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=[b.where for b in SHELL_BLOCKS])
def test_shell_example_runs_in_a_fresh_project(
    block: CodeBlock, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if block.needs is not None:
        pytest.skip(f"needs {block.needs}")
    earlier = [b for b in code_blocks(block.path) if b.line <= block.line]
    options = partner_options(earlier)
    with contextlib.ExitStack() as stack:
        if options is not None:  # the walkthrough's own test partner, on its port
            stack.enter_context(
                PartnerServer(
                    port=int(options.get("--port", "0")),
                    client_id=options.get("--client-id"),
                    client_secret=options.get("--client-secret"),
                )
            )
        complaints = run_block(block, monkeypatch)
    assert not complaints, "\n\n".join(complaints)


def run_block(block: CodeBlock, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Run the block's commands in order; the complaints about the ``dovetail`` ones."""
    complaints: list[str] = []
    for line in command_lines(block):
        for step in invocations(line):
            if step.words[:1] == ["cd"] and len(step.words) == 2:
                monkeypatch.chdir(step.words[1])
            elif step.words[:1] == ["export"]:
                for assignment in step.words[1:]:
                    name, _, value = assignment.partition("=")
                    monkeypatch.setenv(name, value)
            elif step.words[:1] == ["dovetail"]:
                complaint = run_command(step.words, step.env, block.exit_code)
                if complaint is not None:
                    complaints.append(f"{block.where}: `{line}` {complaint}")
    return complaints
