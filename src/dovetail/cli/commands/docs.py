"""``dovetail docs``: the interface catalog and one page per flow, from the flow files.

Exit codes: 0 the docs were written; 1 the output folder could not be written; 2 an option,
an environment file or a flow file is wrong (the flows that load are still documented, and
the catalog lists the others with their problems).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dovetail.cli import exit_codes
from dovetail.cli.commands.project import current_project, flow_paths
from dovetail.cli.render import console, fail, print_json, print_problems
from dovetail.errors import ConfigError
from dovetail.projectdocs import document_project, write_docs

DEFAULT_OUT = "docs-site"


def docs(
    flows: Annotated[
        list[str] | None, typer.Argument(help="Flow files, folders or names (default: all flows).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help=f"Output folder (default: {DEFAULT_OUT}/ in the project)."
        ),
    ] = None,
    html: Annotated[bool, typer.Option("--html", help="Write a static HTML site.")] = False,
    env: Annotated[
        str | None,
        typer.Option(
            "--env", "-e", help="Layer environments/ENV.yaml over the flows; report on it only."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Write the interface catalog and a page per flow: diagram, mapping, errors, runbook."""
    project = current_project()
    try:
        paths = flow_paths(project, flows)
        doc = document_project(project, paths, environment=env)
    except ConfigError as exc:
        print_problems(exc.problems)
        raise typer.Exit(exit_codes.USAGE) from None
    target = out if out is not None else project.root / DEFAULT_OUT
    try:
        written = write_docs(doc, target, html=html)
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror or exc}")
        raise typer.Exit(exit_codes.RUNTIME_FAILURE) from None
    problems = [problem for invalid in doc.invalid for problem in invalid.problems]
    if as_json:
        print_json(
            {
                "out": str(target),
                "files": [str(path) for path in written],
                "flows": [flow.name for flow in doc.flows],
                "invalid": [{"file": i.file, "problems": list(i.problems)} for i in doc.invalid],
            }
        )
    else:
        for line in problems:
            console.print(line, markup=False)
        index = target / ("index.html" if html else "index.md")
        console.print(f"documented {len(doc.flows)} flow(s): {index}", markup=False)
    raise typer.Exit(exit_codes.USAGE if doc.invalid else exit_codes.OK)
