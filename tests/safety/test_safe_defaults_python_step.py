"""The ``python`` step imports only modules of the user's project, never the standard library
or installed packages by dotted name."""

from __future__ import annotations

from pathlib import Path

import pytest

from dovetail.errors import ConfigError
from dovetail.steps import python as python_step
from dovetail.steps.python import load_function


@pytest.mark.parametrize(
    "reference",
    ["os:system", "os.path:join", "subprocess:run", "shutil:rmtree", "orjson:loads", "json:loads"],
)
def test_modules_outside_the_project_are_refused(project: Path, reference: str) -> None:
    with pytest.raises(ConfigError, match="outside the project directory"):
        load_function(project, reference)


def test_a_project_module_shadowing_the_standard_library_is_refused(project: Path) -> None:
    (project / "json.py").write_text("def loads(payload):\n    return payload\n")
    with pytest.raises(ConfigError, match="rename the module if it clashes"):
        load_function(project, "json:loads")


def test_a_module_of_the_project_is_loaded(project: Path) -> None:
    (project / "hooks").mkdir()
    (project / "hooks/__init__.py").write_text("")
    (project / "hooks/orders.py").write_text("def tag(payload):\n    return {**payload, 't': 1}\n")
    loaded = load_function(project, "hooks.orders:tag")
    assert loaded.func({"a": 0}) == {"a": 0, "t": 1}


def test_without_the_check_os_system_would_be_loaded(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(python_step, "_check_inside", lambda *args: None)
    loaded = load_function(project, "os:system")
    import os

    assert loaded.func is os.system


def test_two_projects_in_one_process_each_load_their_own_module(tmp_path: Path) -> None:
    loaded = []
    for tag in ("first", "second"):
        project = tmp_path / tag
        (project / "hooks").mkdir(parents=True)
        (project / "hooks/__init__.py").write_text("")
        (project / "hooks/orders.py").write_text(f"def tag(payload):\n    return {tag!r}\n")
        loaded.append(load_function(project, "hooks.orders:tag"))
    assert [f.func({}) for f in loaded] == ["first", "second"]
