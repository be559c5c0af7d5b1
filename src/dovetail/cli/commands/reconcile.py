"""``dovetail reconcile``: compare a source and a target by key, from a file or from flags.

Exit codes: 0 the accuracy reaches the threshold; 1 a side could not be read; 2 the
reconciliation file or the options are wrong; 3 the accuracy is below the threshold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import anyio
import typer

from dovetail.cli import exit_codes
from dovetail.cli.render import console, fail, print_json, print_problems, table
from dovetail.config.loader import Project, load_project
from dovetail.errors import ConfigError, DovetailError, Problem
from dovetail.reconcile.config import (
    FILE_FORMATS,
    ReconcileConfig,
    load_reconciliation,
    validate_reconciliation,
)
from dovetail.reconcile.render import format_for, render, rule_lines, verdict, write_report
from dovetail.reconcile.report import ReconcileReport
from dovetail.reconcile.run import reconcile_async

RECONCILE_DIR = "reconcile"
_SQL_SCHEMES = ("sqlite:", "postgresql:", "postgres:")


def reconcile(
    config: Annotated[
        str | None,
        typer.Argument(help="Reconciliation file, or a name under reconcile/ (orders)."),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(help="Source: a .csv/.json/.jsonl file, a database URL or an http(s) URL."),
    ] = None,
    source_query: Annotated[
        str | None, typer.Option(help="SQL query when --source is a database URL.")
    ] = None,
    target: Annotated[str | None, typer.Option(help="Target, like --source.")] = None,
    target_query: Annotated[
        str | None, typer.Option(help="SQL query when --target is a database URL.")
    ] = None,
    key: Annotated[
        list[str] | None, typer.Option("--key", "-k", help="Key field (repeat or comma-separate).")
    ] = None,
    tolerance: Annotated[
        list[str] | None, typer.Option(help="FIELD=NUMBER: numeric tolerance (repeatable).")
    ] = None,
    normalize: Annotated[
        list[str] | None,
        typer.Option(help="FIELD=RULE[,RULE]: e.g. email=lower,strip (repeatable)."),
    ] = None,
    ignore: Annotated[list[str] | None, typer.Option(help="Field not compared.")] = None,
    threshold: Annotated[
        float | None, typer.Option(help="Minimum accuracy in percent (default 100).")
    ] = None,
    examples: Annotated[
        int | None, typer.Option(help="Example rows per category in the report.")
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", "-f", help="markdown, html or json.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report to this file.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report.")] = False,
) -> None:
    """Compare source and target data by key: missing, extra, duplicates, field mismatches."""
    project = load_project()
    try:
        report_format = format_for(output, fmt)
        loaded = _configure(
            project,
            config,
            sides={"source": (source, source_query), "target": (target, target_query)},
            key=key,
            tolerance=tolerance,
            normalize=normalize,
            ignore=ignore,
            threshold=threshold,
            examples=examples,
        )
    except ConfigError as exc:
        print_problems(exc.problems)
        raise typer.Exit(exit_codes.USAGE) from None
    except ValueError as exc:
        fail(str(exc))
        raise typer.Exit(exit_codes.USAGE) from None
    try:
        report = anyio.run(lambda: reconcile_async(loaded, project_dir=project.root))
    except ConfigError as exc:  # a key or rule names a field the data does not hold
        print_problems(exc.problems)
        raise typer.Exit(exit_codes.USAGE) from None
    except DovetailError as exc:
        fail(str(exc))
        raise typer.Exit(exit_codes.RUNTIME_FAILURE) from None
    if output is not None:
        write_report(report, output, report_format)
    if as_json:
        print_json(report.as_dict())
    elif output is None and fmt is not None:
        console.out(render(report, report_format), end="", highlight=False)
    else:
        _print_summary(report, output)
    raise typer.Exit(exit_codes.OK if report.passed else exit_codes.SOME_FAILED)


def _print_summary(report: ReconcileReport, output: Path | None) -> None:
    table(
        f"reconcile {report.name}",
        ["count", "value"],
        [[name.replace("_", " "), value] for name, value in report.counts().items()],
    )
    for name, count in sorted(report.mismatches_by_field.items()):
        console.print(f"mismatches in {name}: {count}")
    for line in rule_lines(report):
        console.print(line)
    if output is not None:
        console.print(f"report written to {output}")
    console.print(verdict(report))


def _configure(
    project: Project,
    config: str | None,
    *,
    sides: dict[str, tuple[str | None, str | None]],
    key: list[str] | None,
    tolerance: list[str] | None,
    normalize: list[str] | None,
    ignore: list[str] | None,
    threshold: float | None,
    examples: int | None,
) -> ReconcileConfig:
    """The reconciliation from a file and/or flags (flags override the file's values)."""
    data: dict[str, Any] = {}
    origin = None
    if config is not None:
        loaded = load_reconciliation(_config_path(project, config), project)
        flags = (*sides["source"], *sides["target"], key, tolerance, normalize, ignore)
        if all(flag is None for flag in (*flags, threshold, examples)):
            return loaded
        data = loaded.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)
        if not (key or tolerance or normalize or ignore):  # field names still the file's own
            origin = loaded.origin
    for role, (location, query) in sides.items():
        if location is not None:
            data[role] = side_from_flag(location, query, role)
        elif query is not None:
            raise ValueError(f"--{role}-query needs --{role} (a database URL)")
    if key:
        data["key"] = [part.strip() for item in key for part in item.split(",") if part.strip()]
    fields: dict[str, Any] = data.setdefault("fields", {})
    for name, value in _pairs(tolerance, "--tolerance"):
        fields.setdefault(name, {})["tolerance"] = value
    for name, value in _pairs(normalize, "--normalize"):
        fields.setdefault(name, {})["normalize"] = [v.strip() for v in value.split(",")]
    if ignore:
        data["ignore"] = [*data.get("ignore", []), *ignore]
    if threshold is not None:
        data["threshold"] = threshold
    if examples is not None:
        data["examples"] = examples
    missing = [f"--{name}" for name in ("source", "target", "key") if not data.get(name)]
    if missing:
        raise ValueError(f"give a reconciliation file or {', '.join(missing)}")
    data.setdefault("name", "reconcile")
    return validate_reconciliation(data, project.root).located_in(origin)


def _config_path(project: Project, config: str) -> Path:
    candidate = Path(config)
    if candidate.is_file():
        return candidate
    for name in (f"{config}.yaml", f"{config}.yml"):
        named = project.root / RECONCILE_DIR / name
        if named.is_file():
            return named
    raise ConfigError([Problem(config, 1, 1, "no such reconciliation file or name")])


def side_from_flag(location: str, query: str | None, role: str) -> dict[str, Any]:
    """A side's config from a command-line location (file, database URL or REST URL)."""
    if location.startswith(_SQL_SCHEMES):
        if not query:
            raise ValueError(f"--{role} is a database URL: give --{role}-query too")
        return {"sql": {"url": location, "query": query}}
    if query is not None:
        raise ValueError(f"--{role}-query is only for a database URL")
    if location.startswith(("http://", "https://")):
        return {"rest": {"url": location}}
    suffix = Path(location).suffix.lower()
    kind = FILE_FORMATS.get(suffix)
    if kind is None:
        raise ValueError(
            f"cannot tell the format of {location!r} from its suffix; use .csv, .json, .jsonl"
            " or a reconciliation file"
        )
    return {kind: {"path": str(Path(location).resolve())}}


def _pairs(values: list[str] | None, flag: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values or []:
        name, sep, rest = value.partition("=")
        if not sep or not name.strip() or not rest.strip():
            raise ValueError(f"{flag} expects FIELD=VALUE, not {value!r}")
        pairs.append((name.strip(), rest.strip()))
    return pairs
