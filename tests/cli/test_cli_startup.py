"""``dovetail --help`` and ``--version`` start fast: no engine module is imported for them;
commands are listed in the order a user meets them, with the help of the real command."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from importlib.metadata import version

import orjson
import pytest
import typer.main

from dovetail.cli.app import DovetailGroup, app

HEAVY = (
    "sqlalchemy",
    "httpx",
    "lxml",
    "jsonata",
    "pydantic",
    "structlog",
    "starlette",
    "dovetail.api",
    "dovetail.config",
    "dovetail.connectors",
    "dovetail.runtime",
    "dovetail.store",
    "dovetail.reconcile",
)

PROBE = """
import sys, orjson
from dovetail.cli.app import main
sys.argv = ["dovetail", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {"sqlalchemy", "httpx", "lxml",
    "jsonata", "pydantic", "structlog", "starlette"} or m.startswith("dovetail."))
sys.stderr.write("\\nMODULES " + orjson.dumps(loaded).decode() + "\\n")
"""


def _modules_loaded_by(*args: str) -> tuple[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60
    )
    marker = done.stderr.rsplit("MODULES ", 1)
    assert len(marker) == 2, done.stderr
    return done.stdout, orjson.loads(marker[1])


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


@pytest.mark.parametrize("args", [["--help"], ["--version"]])
def test_help_and_version_import_no_engine_module(args: list[str]) -> None:
    out, modules = _modules_loaded_by(*args)
    assert out.strip(), "the command printed nothing"
    assert _heavy(modules) == []


def test_a_command_imports_only_its_own_modules() -> None:
    _, modules = _modules_loaded_by("reconcile", "--help")
    assert "dovetail.cli.commands.reconcile" in modules
    assert not [
        m
        for m in modules
        if m.startswith(("dovetail.cli.commands.", "dovetail.api"))
        and m != "dovetail.cli.commands.reconcile"
    ]


def test_version_prints_the_installed_version() -> None:
    out, _ = _modules_loaded_by("--version")
    assert out == f"dovetail {version('dovetail')}\n"


def test_help_lists_commands_in_the_order_a_user_meets_them() -> None:
    out, _ = _modules_loaded_by("--help")
    listed = [
        m.group(1) for m in (re.match(r"^│ ([a-z]+) ", line) for line in out.splitlines()) if m
    ]
    commands = [name for name in listed if name in DovetailGroup.order]
    assert commands == list(DovetailGroup.order)


def test_every_top_level_command_has_a_place_in_the_order() -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, DovetailGroup)
    assert sorted(group.commands) == sorted(DovetailGroup.order)


@pytest.mark.parametrize("spec", DovetailGroup.lazy, ids=lambda spec: spec.name)
def test_listed_help_of_a_lazy_command_is_its_own(spec: object) -> None:
    from dovetail.cli.lazy import LazyCommand

    assert isinstance(spec, LazyCommand)
    real = spec.load()
    first_paragraph = inspect.cleandoc(real.help or "").split("\n\n")[0]
    assert spec.help == " ".join(first_paragraph.split())
