"""Flow loading: every problem reported as path:line:col with a useful message."""

from __future__ import annotations

from pathlib import Path

import pytest

from dovetail.config.loader import load_flow
from dovetail.errors import ConfigError

GOOD = """\
flow: orders-to-erp
version: 1.2.0
source:
  file: {path: inbox/*.csv, format: csv}
steps:
  - filter: total > 0
sink:
  file:
    path: out/orders.jsonl
    format: jsonl
"""


def problems(project: Path, text: str, **kwargs: object) -> list[str]:
    path = project / "flows" / "f.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_flow(path, **kwargs)  # type: ignore[arg-type]
    return [str(p) for p in caught.value.problems]


def test_a_valid_flow_loads(project: Path) -> None:
    (project / "flows" / "f.yaml").write_text(GOOD, encoding="utf-8")
    flow = load_flow(project / "flows" / "f.yaml")
    assert flow.name == "orders-to-erp" and flow.version == "1.2.0"
    assert [s.spec.name for s in flow.steps] == ["filter"]
    assert list(flow.sinks) == ["sink"]


def test_unknown_key_has_position_and_did_you_mean(project: Path) -> None:
    found = problems(project, GOOD.replace("format: csv", "formt: csv"))
    assert any(
        p.startswith("flows/f.yaml:4:") and "unknown key 'formt' (did you mean 'format'?)" in p
        for p in found
    ), found


def test_unknown_component_suggests_the_closest(project: Path) -> None:
    found = problems(project, GOOD.replace("- filter:", "- filtr:"))
    assert found == [
        "flows/f.yaml:6:5: unknown step 'filtr' (did you mean 'filter'?); known: "
        + found[0].split("known: ")[1]
    ]


def test_jsonata_syntax_error_points_at_the_expression(project: Path) -> None:
    found = problems(project, GOOD.replace("total > 0", "total >"))
    assert len(found) == 1 and found[0].startswith("flows/f.yaml:6:13:")
    assert "JSONata syntax error" in found[0]


def test_wrong_type_says_what_was_found(project: Path) -> None:
    text = GOOD + "runtime: {batch_size: lots}\n"
    (found,) = problems(project, text)
    assert found.startswith("flows/f.yaml:11:23: runtime.batch_size:")
    assert "'lots'" in found


def test_missing_referenced_file_is_reported(project: Path) -> None:
    text = GOOD.replace("  - filter: total > 0", "  - validate: {schema: schemas/none.json}")
    (found,) = problems(project, text)
    assert found.startswith("flows/f.yaml:6:")
    assert "schemas/none.json" in found


def test_every_problem_is_reported_at_once(project: Path) -> None:
    text = GOOD.replace("format: csv", "formt: csv").replace("total > 0", "total >")
    text = text.replace("version: 1.2.0", "version: one")
    found = problems(project, text)
    assert len(found) == 3, found
    assert [p.split(":")[1] for p in found] == ["2", "4", "6"]


def test_yaml_syntax_error_has_a_position(project: Path) -> None:
    (found,) = problems(project, "flow: x\nsource: {file: [\n")
    assert found.startswith("flows/f.yaml:3:") and "YAML syntax error" in found


def test_undefined_variable_lists_where_it_looked(project: Path) -> None:
    (project / "environments").mkdir()
    (project / "environments" / "dev.yaml").write_text("vars: {other: 1}\n", encoding="utf-8")
    text = GOOD.replace("out/orders.jsonl", "out/${var:region}.jsonl")
    (found,) = problems(project, text, environment="dev")
    assert found.startswith("flows/f.yaml:9:")
    assert "undefined var 'region'; looked in: environments/dev.yaml vars" in found


def test_environment_overrides_and_vars_apply(project: Path) -> None:
    (project / "environments").mkdir()
    (project / "environments" / "prod.yaml").write_text(
        "vars: {region: eu}\nflows:\n  orders-to-erp:\n    runtime: {batch_size: 50}\n",
        encoding="utf-8",
    )
    path = project / "flows" / "f.yaml"
    path.write_text(GOOD.replace("out/orders.jsonl", "out/${var:region}.jsonl"), encoding="utf-8")
    flow = load_flow(path, environment="prod")
    assert flow.spec.runtime.batch_size == 50
    assert flow.sinks["sink"].config.path == "out/eu.jsonl"


def test_secrets_come_from_env_then_secret_files(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "dovetail.yaml").write_text("secrets: {files: [secrets]}\n", encoding="utf-8")
    (project / "secrets").mkdir()
    (project / "secrets" / "OUT_NAME").write_text("from-file\n", encoding="utf-8")
    path = project / "flows" / "f.yaml"
    path.write_text(
        GOOD.replace("out/orders.jsonl", "out/${secret:OUT_NAME}.jsonl"), encoding="utf-8"
    )
    assert load_flow(path).sinks["sink"].config.path == "out/from-file.jsonl"
    monkeypatch.setenv("OUT_NAME", "from-env")
    assert load_flow(path).sinks["sink"].config.path == "out/from-env.jsonl"


def test_missing_secret_in_strict_mode_names_every_place(project: Path) -> None:
    text = GOOD.replace("out/orders.jsonl", "out/${secret:NOPE_SECRET_X}.jsonl")
    (found,) = problems(project, text)
    assert "undefined secret 'NOPE_SECRET_X'" in found
    assert "environment variable NOPE_SECRET_X" in found


@pytest.mark.parametrize("strict", [True, False])
def test_a_secret_too_short_to_redact_is_refused_by_name_at_its_position(
    project: Path, monkeypatch: pytest.MonkeyPatch, strict: bool
) -> None:
    monkeypatch.setenv("SHORT_PIN", "q7z")
    text = GOOD.replace("out/orders.jsonl", "out/${secret:SHORT_PIN}.jsonl")
    (found,) = problems(project, text, strict=strict)
    assert found.startswith("flows/f.yaml:9:11: secret 'SHORT_PIN' is 3 character(s) long;")
    assert "at least 4 characters" in found and "q7z" not in found


def test_an_empty_secret_is_not_refused(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMPTY_SUFFIX", "")
    path = project / "flows" / "f.yaml"
    path.write_text(GOOD.replace(".jsonl", "${secret:EMPTY_SUFFIX}.jsonl"), encoding="utf-8")
    assert load_flow(path).sinks["sink"].config.path == "out/orders.jsonl"


def test_lenient_mode_keeps_unresolved_env_references(project: Path) -> None:
    path = project / "flows" / "f.yaml"
    path.write_text(
        GOOD.replace("out/orders.jsonl", "out/${env:NOT_SET_ANYWHERE}.jsonl"), encoding="utf-8"
    )
    flow = load_flow(path, strict=False)
    assert flow.sinks["sink"].config.path == "out/${env:NOT_SET_ANYWHERE}.jsonl"


def test_sink_and_sinks_are_exclusive(project: Path) -> None:
    text = GOOD + "sinks:\n  x: {file: {path: out/x.jsonl}}\n"
    (found,) = problems(project, text)
    assert "exactly one of 'sink' or 'sinks'" in found


def test_route_targets_must_be_declared_sinks(project: Path) -> None:
    text = GOOD.replace(
        "  - filter: total > 0",
        "  - route: {routes: [{when: 'true', to: [nowhere]}]}",
    )
    (found,) = problems(project, text)
    assert "route target 'nowhere' is not a declared sink (declared: sink)" in found


def test_a_mapping_sheet_problem_points_into_the_sheet(project: Path) -> None:
    (project / "mappings").mkdir()
    (project / "mappings" / "m.csv").write_text(
        "target,source,transform,required,note\nid,order_id,trim,yes,\nname,name,uper,no,\n"
    )
    text = GOOD.replace("  - filter: total > 0", "  - map: {sheet: mappings/m.csv}")
    (found,) = problems(project, text)
    assert found.startswith("mappings/m.csv:3:3: unknown transform 'uper' (did you mean 'upper'?)")
    assert found.endswith("(used at flows/f.yaml:6:18)")


def test_did_you_mean_uses_the_yaml_name_of_aliased_fields(project: Path) -> None:
    (project / "s.json").write_text("{}")
    text = GOOD.replace("  - filter: total > 0", "  - validate: {schemaa: s.json}")
    found = problems(project, text)
    assert any("unknown key 'schemaa' (did you mean 'schema'?)" in p for p in found)


def test_load_flow_accepts_a_string_path(project: Path) -> None:
    (project / "flows" / "f.yaml").write_text(GOOD, encoding="utf-8")
    assert load_flow(str(project / "flows" / "f.yaml")).name == "orders-to-erp"


def test_a_relative_sqlite_store_is_inside_the_project(project: Path) -> None:
    from dovetail.config.loader import load_project

    (project / "dovetail.yaml").write_text("store: sqlite:///state/s.db\n", encoding="utf-8")
    assert load_project(project).store_url() == f"sqlite:///{project.resolve()}/state/s.db"
