"""``dovetail contract diff OLD NEW``: breaking changes between two versions of a partner's
OpenAPI document, marked where they touch fields the project's flows use."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dovetail.cli import exit_codes
from dovetail.cli.commands.project import current_project, load_flows
from dovetail.cli.render import console, fail, print_json
from dovetail.config.model import Flow
from dovetail.contracts.diff import SpecDiff, diff_specs
from dovetail.contracts.impact import flow_contracts, mark_usage
from dovetail.contracts.openapi import ContractError, load_openapi
from dovetail.errors import ConfigError
from dovetail.observability.redaction import redact

contract_app = typer.Typer(help="Check partner API contracts.", no_args_is_help=True)


@contract_app.command("diff")
def contract_diff(
    old: Annotated[Path, typer.Argument(help="The OpenAPI document the flows were built on.")],
    new: Annotated[Path, typer.Argument(help="The partner's new OpenAPI document.")],
    flow: Annotated[
        str | None,
        typer.Option(help="Match against this flow (default: flows whose contract is OLD/NEW)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Breaking changes from OLD to NEW; exit 3 when one touches a field a flow uses."""
    try:
        before, after = load_openapi(old), load_openapi(new)
    except ContractError as exc:
        fail(str(exc))
        raise typer.Exit(exit_codes.USAGE) from None
    diff = diff_specs(before, after)
    flows = _flows(flow, [old, new])
    mark_usage(diff, flows, [old, new])
    if as_json:
        print_json(
            {
                "old": str(old),
                "new": str(new),
                "flows": [f.name for f in flows],
                "breaking": [change.as_dict() for change in diff.changes],
                "touching": len(diff.touching),
            }
        )
    else:
        console.print(render_markdown(diff, old, new, flows), markup=False)
    raise typer.Exit(exit_codes.SOME_FAILED if diff.touching else exit_codes.OK)


def _flows(name: str | None, specs: list[Path]) -> list[Flow]:
    project = current_project()
    if name is not None:
        try:
            return load_flows(project, [name], environment=None, strict=False)
        except ConfigError as exc:
            for problem in exc.problems:
                fail(str(problem))
            raise typer.Exit(exit_codes.USAGE) from None
    chosen: list[Flow] = []
    for path in project.flow_paths():
        try:
            (loaded,) = load_flows(project, [str(path)], environment=None, strict=False)
        except ConfigError:
            continue  # `dovetail lint` reports broken flows; here they just cannot be matched
        if flow_contracts(loaded, specs):
            chosen.append(loaded)
    return chosen


def render_markdown(diff: SpecDiff, old: Path, new: Path, flows: list[Flow]) -> str:
    """The diff as a Markdown section, ready for release notes or a pull request."""
    lines = [f"## Contract changes: {old.name} -> {new.name}", ""]
    if flows:
        lines.append(f"Checked against: {', '.join(f.name for f in flows)}")
    else:
        lines.append("No flow matched (use --flow NAME to check a flow's mappings).")
    lines.append("")
    if not diff.changes:
        lines.append("No breaking changes.")
        return "\n".join(lines)
    lines.append("| used | change | operation | field | detail | used by |")
    lines.append("| --- | --- | --- | --- | --- | --- |")
    for change in diff.changes:
        cells = [
            "YES" if change.used_by else "",
            change.kind,
            change.operation,
            change.field or "",
            change.detail,
            change.used_by or "",
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines.append("")
    lines.append(
        f"{len(diff.changes)} breaking change(s), {len(diff.touching)} touching fields in use."
    )
    return "\n".join(lines)


def _cell(text: str) -> str:
    return redact(text).replace("|", "\\|").replace("\n", " ")
