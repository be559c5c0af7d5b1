"""Flow files are loaded as plain data: tags are refused with a position (never executed),
alias bombs (by node count and by expanded text), self-referencing aliases, oversized files
and nesting deeper than 100 levels are refused, quickly, with a position."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from dovetail.cli.app import app
from dovetail.config import yaml_positions
from dovetail.config.yaml_positions import load_yaml
from dovetail.errors import ConfigError

FLOW = """\
flow: f
version: 1.0.0
source:
  file: {{path: "inbox/*.jsonl"}}
steps:
  - map: {tag} ['touch {marker}']
sink:
  file: {{path: outbox/out.jsonl}}
"""


def test_lint_reports_a_python_object_tag_with_its_position_and_runs_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = project / "pwned"
    flow = FLOW.format(tag="!!python/object/apply:os.system", marker=marker)
    (project / "flows/f.yaml").write_text(flow, encoding="utf-8")
    monkeypatch.chdir(project)
    result = CliRunner().invoke(app, ["lint"])
    assert result.exit_code != 0
    assert "flows/f.yaml:6:10" in result.output
    assert "YAML tag !!python/object/apply:os.system is not allowed" in result.output
    assert not marker.exists()


@pytest.mark.parametrize(
    "text",
    [
        "a: !!python/object:pathlib.PosixPath {}\n",
        "a: !!python/name:os.system\n",
        "a: !!python/object/new:subprocess.Popen [[touch, x]]\n",
        "a: !custom 3\n",
        "a: !!binary aGVsbG8=\n",
        "a: !!set {x}\n",
    ],
)
def test_every_tag_beyond_plain_data_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match=r"x\.yaml:1:4: YAML tag .* is not allowed"):
        load_yaml(Path("x.yaml"), text=text)


@pytest.mark.parametrize(
    ("text", "data"),
    [
        ("a: !!str 3\n", {"a": "3"}),
        ("a: 2001-12-14\n", {"a": "2001-12-14"}),
        ("base: &b {x: 1}\nuse:\n  <<: *b\n  y: 2\n", {"base": {"x": 1}, "use": {"x": 1, "y": 2}}),
        ("a: &x [1, 2]\nb: *x\n", {"a": [1, 2], "b": [1, 2]}),
    ],
)
def test_plain_data_tags_merges_and_aliases_still_load(text: str, data: object) -> None:
    assert load_yaml(Path("x.yaml"), text=text).data == data


def test_without_the_tag_check_a_tag_would_be_silently_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(yaml_positions, "check_nodes", lambda root, shown: None)
    loaded = load_yaml(Path("x.yaml"), text="a: !!python/object/apply:os.system [x]\n")
    assert loaded.data == {"a": ["x"]}


def alias_bomb(levels: int) -> str:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        refs = ", ".join([f"*l{level - 1}"] * 10)
        lines.append(f"l{level}: &l{level} [{refs}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_quickly() -> None:
    started = time.monotonic()
    with pytest.raises(ConfigError, match="aliases expand to more than 1000000 nodes"):
        load_yaml(Path("x.yaml"), text=alias_bomb(9))
    assert time.monotonic() - started < 2


def test_the_alias_bomb_really_expands_exponentially() -> None:
    # what the loader would have to build: 10**levels leaves (counted, not built, here)
    data = YAML(typ="rt").load(alias_bomb(4))
    assert len(data["l3"]) * len(data["l3"][0]) * len(data["l3"][0][0]) == 1000


def test_a_self_referencing_alias_is_refused() -> None:
    with pytest.raises(ConfigError, match="alias refers to itself"):
        load_yaml(Path("x.yaml"), text="a: &a [1, *a]\n")


def string_bomb(size: int, aliases: int) -> str:
    return f"a: &a {'x' * size}\nb: [{', '.join(['*a'] * aliases)}]\n"


def test_one_long_string_aliased_many_times_is_refused_by_its_expanded_size() -> None:
    """The node count stays small (3,000 aliases), the text would be 3 GB once expanded."""
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        load_yaml(Path("x.yaml"), text=string_bomb(1_000_000, 3_000))
    assert time.monotonic() - started < 5  # scanning the 1 MB string is most of it
    assert [str(p) for p in caught.value.problems] == [
        "x.yaml:2:4: YAML aliases expand to more than 8388608 characters of text; refused"
    ]


def test_a_string_bomb_just_over_the_limit_is_refused_and_one_under_it_loads() -> None:
    with pytest.raises(ConfigError, match="more than 8388608 characters"):
        load_yaml(Path("x.yaml"), text=string_bomb(1_000_000, 9))
    assert len(load_yaml(Path("x.yaml"), text=string_bomb(1_000_000, 6)).data["b"]) == 6


def test_a_file_larger_than_the_limit_is_refused_before_parsing() -> None:
    with pytest.raises(ConfigError, match=r"x\.yaml:1:1: file is larger than 8388608"):
        load_yaml(Path("x.yaml"), text="a: " + "x" * (8 * 1024 * 1024) + "\n")


def nested(style: str, depth: int) -> str:
    if style == "flow sequence":
        return "a: " + "[" * depth + "]" * depth + "\n"
    if style == "flow mapping":
        return "a: " + "{a: " * depth + "}" * depth + "\n"
    if style == "block mapping":  # one more space of indentation per level
        return "".join(" " * i + "k:\n" for i in range(depth)) + " " * depth + "v\n"
    return "- " * depth + "v\n"  # compact nested block sequences on one line


STYLES = ["flow sequence", "flow mapping", "block mapping", "block sequence"]


@pytest.mark.parametrize("style", STYLES)
def test_nesting_ten_thousand_deep_is_refused_at_its_position_in_milliseconds(
    style: str,
) -> None:
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        # a 10,000-deep block mapping would be 50 MB of indentation: 3,000 levels (4.5 MB)
        load_yaml(Path("x.yaml"), text=nested(style, 3_000 if style == "block mapping" else 10_000))
    assert time.monotonic() - started < 0.5
    (problem,) = caught.value.problems
    assert problem.message == "YAML mappings and sequences nest deeper than 100 levels; refused"
    if style == "block mapping":
        assert problem.line == 101
    else:
        assert problem.line == 1 and 100 < problem.col < 420


@pytest.mark.parametrize("style", STYLES)
def test_nesting_up_to_the_limit_loads(style: str) -> None:
    data = load_yaml(Path("x.yaml"), text=nested(style, 99)).data
    depth = 0
    while isinstance(data, dict | list) and data:
        data = data["a" if "a" in data else "k"] if isinstance(data, dict) else data[0]
        depth += 1
    assert depth >= 99


def test_lint_reports_deep_nesting_as_a_config_error_not_a_traceback(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "flows/f.yaml").write_text(
        "flow: f\nversion: 1.0.0\nx: " + "[" * 20_000 + "]" * 20_000 + "\n", encoding="utf-8"
    )
    monkeypatch.chdir(project)
    started = time.monotonic()
    result = CliRunner().invoke(app, ["lint"])
    assert time.monotonic() - started < 2
    assert result.exit_code != 0
    assert not isinstance(result.exception, RecursionError)
    assert "flows/f.yaml:3:" in result.output and "nest deeper than 100 levels" in result.output
    assert "Traceback" not in result.output
