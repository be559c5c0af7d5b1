"""The ``dovetail`` command: every subcommand, its options and its exit code (SPEC §6).

Exit codes: 0 success; 1 runtime failure; 2 usage or configuration error; 3 finished but some
messages were dead-lettered (for ``test``: some cases failed).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Awaitable, Callable
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from dovetail import __version__
from dovetail.cli import exit_codes
from dovetail.cli.lazy import LazyCommand, LazyGroup
from dovetail.cli.render import console, fail, print_json, print_problems, table
from dovetail.errors import ConfigError, DovetailError

if TYPE_CHECKING:
    from dovetail.config.loader import Project
    from dovetail.config.model import Flow
    from dovetail.store.base import Store

# Command modules are imported inside the commands that use them, never here, so that
# ``--help`` and ``--version`` load nothing of the engine (tests/cli/test_cli_startup.py).

T = TypeVar("T")


class DovetailGroup(LazyGroup):
    """The top-level commands, in the order a user meets them."""

    order = (
        "init",
        "lint",
        "test",
        "run",
        "dlq",
        "replay",
        "trace",
        "kpi",
        "reconcile",
        "docs",
        "schema",
        "env",
        "contract",
    )
    lazy = (
        LazyCommand(
            "trace",
            "dovetail.cli.commands.trace",
            "trace",
            "The journey of a message: received, each step and sink, retries, delivery or dead"
            " letter, replays, with the latency of each event; across flows sharing its"
            " correlation id. Find it by message id, correlation id or a business key"
            " (ORD-00257).",
        ),
        LazyCommand(
            "kpi",
            "dovetail.cli.commands.kpi",
            "kpi",
            "Success rate, dead letters and DLQ depth, retries, mean time to replay and latency"
            " percentiles per flow over a window (default: the last 24 hours).",
        ),
        LazyCommand(
            "reconcile",
            "dovetail.cli.commands.reconcile",
            "reconcile",
            "Compare source and target data by key: missing, extra, duplicates, field mismatches.",
        ),
        LazyCommand(
            "docs",
            "dovetail.cli.commands.docs",
            "docs",
            "Write the interface catalog and a page per flow: diagram, mapping, errors, runbook.",
        ),
        LazyCommand("env", "dovetail.cli.commands.env", "env_app", "Compare environments."),
        LazyCommand(
            "contract",
            "dovetail.cli.commands.contract",
            "contract_app",
            "Check partner API contracts.",
        ),
    )


app = typer.Typer(
    name="dovetail",
    cls=DovetailGroup,
    help="Declare integration flows in YAML; run them with delivery guarantees.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
dlq_app = typer.Typer(help="Inspect and discard dead-lettered messages.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
EnvOpt = Annotated[
    str | None, typer.Option("--env", "-e", help="Layer environments/ENV.yaml over the flows.")
]
FlowsArg = Annotated[
    list[str] | None, typer.Argument(help="Flow files, folders or names (default: all flows).")
]


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"dovetail {__version__}\n")
        raise typer.Exit(exit_codes.OK)


@app.callback()
def _main(
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning")] = "warning",
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    from dovetail.observability.logging import configure_logging

    configure_logging(log_level)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Where to create the project.")] = Path("."),
    force: Annotated[bool, typer.Option(help="Write into a non-empty folder.")] = False,
) -> None:
    """Scaffold a project with a working example (web-shop orders to an ERP)."""
    if directory.exists() and any(directory.iterdir()) and not force:
        fail(f"{directory} is not empty (use --force to write into it)")
        raise typer.Exit(exit_codes.USAGE)
    template = files("dovetail.cli").joinpath("scaffold", "project")
    with_template = Path(str(template))
    shutil.copytree(with_template, directory, dirs_exist_ok=True)
    console.print(f"created project in {directory}")
    console.print("next: dovetail lint && dovetail test && dovetail run --once")


@app.command()
def lint(paths: FlowsArg = None, env: EnvOpt = None, as_json: JsonOpt = False) -> None:
    """Validate flows, the files they reference and the governance rules (file:line:col)."""
    from dovetail.cli.commands.governance import (
        findings_exit_code,
        governance_findings,
        print_findings,
    )
    from dovetail.cli.commands.project import current_project, load_flows

    project = current_project()
    try:
        flows = load_flows(project, paths, environment=env, strict=env is not None)
    except ConfigError as exc:
        if as_json:
            print_json(
                [p.__dict__ if hasattr(p, "__dict__") else _problem(p) for p in exc.problems]
            )
        else:
            print_problems(exc.problems)
        raise typer.Exit(exit_codes.USAGE) from None
    try:
        findings = governance_findings(project, flows)
    except ConfigError as exc:
        if as_json:
            print_json([_problem(p) for p in exc.problems])
        else:
            print_problems(exc.problems)
        raise typer.Exit(exit_codes.USAGE) from None
    code = findings_exit_code(findings)
    if as_json:
        print_json([f.as_dict() for f in findings])
    else:
        print_findings(findings)
        if code == exit_codes.OK:
            console.print(f"{len(flows)} flow(s) OK")
    raise typer.Exit(code)


def _problem(problem: object) -> dict[str, object]:
    return {k: getattr(problem, k) for k in ("path", "line", "col", "message")}


@app.command()
def schema() -> None:
    """Print the JSON Schema of the flow format."""
    from dovetail.config.schema import flow_schema

    print_json(flow_schema())


@app.command()
def run(
    flows: FlowsArg = None,
    once: Annotated[bool, typer.Option("--once", help="Drain current input, then exit.")] = False,
    env: EnvOpt = None,
    as_json: JsonOpt = False,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", help="Serve Prometheus /metrics on this port.", min=1),
    ] = None,
) -> None:
    """Run flows in the foreground (Ctrl-C drains in-flight messages and stops)."""
    import anyio

    from dovetail.cli.commands.project import current_project
    from dovetail.cli.commands.run import (
        exit_code_for,
        print_summaries,
        progress_wanted,
        run_flows,
    )
    from dovetail.connectors.http.event_loop import run_options
    from dovetail.observability.setup import observe_project

    project = current_project()
    loaded = _load_or_exit(project, flows, env, strict=True)
    try:
        stop_observing = observe_project(project, metrics_port=metrics_port)
    except DovetailError as exc:
        fail(str(exc))
        raise typer.Exit(exit_codes.USAGE) from None
    try:
        summaries = anyio.run(
            lambda: run_flows(project, loaded, once=once, progress=progress_wanted(once, as_json)),
            backend_options=run_options(),
        )
    except DovetailError as exc:
        fail(str(exc))
        raise typer.Exit(exit_codes.RUNTIME_FAILURE) from None
    finally:
        stop_observing()
    print_summaries(summaries, as_json=as_json)
    raise typer.Exit(exit_code_for(summaries))


@app.command("test")
def flow_test(
    paths: FlowsArg = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here.")] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write a Markdown evidence report here.")
    ] = None,
    update: Annotated[
        bool, typer.Option("--update", help="Rewrite golden files that differ or are missing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run flow test cases (tests/<flow>/*.yaml) offline with sinks captured."""
    import anyio

    from dovetail.cli.commands.flowtest import (
        print_results,
        run_cases,
        write_evidence,
        write_junit,
    )
    from dovetail.cli.commands.project import current_project
    from dovetail.observability.logging import configure_logging

    configure_logging("error")  # expected dead letters are the point of many cases
    project = current_project()
    loaded = _load_or_exit(project, paths, None, strict=False)
    try:
        results = anyio.run(lambda: run_cases(project, loaded, update_golden=update))
    except ConfigError as exc:
        print_problems(exc.problems)
        raise typer.Exit(exit_codes.USAGE) from None
    if junit is not None:
        write_junit(results, junit)
    if report is not None:
        write_evidence(report, project, loaded, results)
    print_results(project, results, as_json=as_json)
    if not results:
        fail("no test cases found under tests/<flow>/")
        raise typer.Exit(exit_codes.USAGE)
    raise typer.Exit(exit_codes.OK if all(r.passed for r in results) else exit_codes.SOME_FAILED)


@dlq_app.command("list")
def dlq_list(
    flow: Annotated[str | None, typer.Option(help="Only this flow.")] = None,
    reason: Annotated[str | None, typer.Option(help="Reason contains this text.")] = None,
    status: Annotated[str, typer.Option(help="open, replayed, discarded or all.")] = "open",
    limit: Annotated[int, typer.Option(help="At most this many.")] = 200,
    as_json: JsonOpt = False,
) -> None:
    """List dead letters (newest last)."""
    import anyio

    from dovetail.cli.commands.dlq import letter_view, mask_for
    from dovetail.cli.commands.project import current_project
    from dovetail.store.base import DeadLetterQuery

    project = current_project()
    query = DeadLetterQuery(
        flow=flow,
        reason=reason,
        status=None if status == "all" else status,
        limit=limit,
        newest=True,
    )
    letters = anyio.run(_with_store, project, lambda store: store.dead_letters(query))
    policies = mask_for(project)
    views = [letter_view(letter, policies.get(letter.flow, []), full=False) for letter in letters]
    if as_json:
        print_json(views)
        return
    table(
        None,
        ["id", "flow", "step", "reason", "attempt", "repeats", "source", "last failed", "status"],
        [
            [
                v["id"],
                v["flow"],
                v["step"],
                v["reason"],
                v["attempt"],
                v["repeats"],
                v["source_position"],
                v["last_failed_at"],
                v["status"],
            ]
            for v in views
        ],
    )
    console.print(f"{len(views)} dead letter(s)")


@dlq_app.command("show")
def dlq_show(
    ident: Annotated[int, typer.Argument(help="Dead-letter id.")], as_json: JsonOpt = False
) -> None:
    """Show one dead letter with its (masked) payload and failure history."""
    import anyio

    from dovetail.cli.commands.dlq import letter_view, mask_for
    from dovetail.cli.commands.project import current_project
    from dovetail.store.base import DeadLetterQuery

    project = current_project()
    query = DeadLetterQuery(ids=[ident], status=None)
    letters = anyio.run(_with_store, project, lambda store: store.dead_letters(query))
    if not letters:
        fail(f"no dead letter with id {ident}")
        raise typer.Exit(exit_codes.USAGE)
    letter = letters[0]
    view = letter_view(letter, mask_for(project).get(letter.flow, []), full=True)
    if as_json:
        print_json(view)
        return
    for key, value in view.items():
        if key not in {"payload", "history"}:
            console.print(f"[bold]{key}[/]: {value}")
    console.print("[bold]payload[/]:")
    print_json(view["payload"])
    console.print("[bold]history[/]:")
    for entry in view["history"]:
        repeat = f" (repeat, message {entry.get('message_id')})" if entry.get("repeat") else ""
        wait = entry.get("retry_in")
        then = "" if wait is None else f"; next attempt in {wait:g}s"
        console.print(
            f"  attempt {entry.get('attempt')} at {entry.get('step')}: {entry.get('reason')}"
            + then
            + repeat
        )


@dlq_app.command("discard")
def dlq_discard(ids: Annotated[list[int], typer.Argument(help="Dead-letter ids.")]) -> None:
    """Mark dead letters as discarded (they are kept for audit, never replayed)."""
    import anyio

    from dovetail.cli.commands.project import current_project

    project = current_project()
    count = anyio.run(
        _with_store, project, lambda store: store.set_dead_letter_status(ids, "discarded")
    )
    console.print(f"discarded {count} dead letter(s)")


@dlq_app.command("parked")
def dlq_parked(
    flow: Annotated[str | None, typer.Option(help="Only this flow.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 200,
    as_json: JsonOpt = False,
) -> None:
    """List messages parked for a later retry (oldest first), with their next attempt."""
    import anyio

    from dovetail.cli.commands.dlq import parked_view
    from dovetail.cli.commands.project import current_project

    project = current_project()
    messages = anyio.run(_with_store, project, lambda store: store.parked(flow, limit))
    views = [parked_view(message) for message in messages]
    if as_json:
        print_json(views)
        return
    table(
        None,
        ["id", "flow", "sink", "reason", "attempt", "next attempt", "ordering key"],
        [
            [
                v["id"],
                v["flow"],
                v["sink"],
                v["reason"],
                v["attempt"],
                v["next_attempt_at"],
                v["ordering_key"],
            ]
            for v in views
        ],
    )
    console.print(f"{len(views)} parked message(s)")


@app.command()
def replay(
    flow: Annotated[str | None, typer.Option(help="Only this flow.")] = None,
    ident: Annotated[
        list[int] | None, typer.Option("--id", help="Dead-letter id (repeatable).")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Reason contains this text.")] = None,
    since: Annotated[str | None, typer.Option(help="Failed at or after (ISO-8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Failed at or before (ISO-8601).")] = None,
    env: EnvOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-drive open dead letters through the current flow version; duplicate-safe."""
    import anyio

    from dovetail.api import replay_async
    from dovetail.cli.commands.dlq import parse_time
    from dovetail.cli.commands.project import current_project
    from dovetail.cli.commands.run import exit_code_for, print_summaries
    from dovetail.store.base import DeadLetterQuery

    project = current_project()
    try:
        query = DeadLetterQuery(
            flow=flow,
            ids=ident or None,
            reason=reason,
            status="open",
            since=parse_time(since),
            until=parse_time(until),
        )
    except ValueError as exc:
        fail(f"bad time: {exc}")
        raise typer.Exit(exit_codes.USAGE) from None
    flows = _load_or_exit(project, _paths_of(project, flow), env, strict=True)
    try:
        report = anyio.run(
            _with_store,
            project,
            lambda store: replay_async(project, store, query, flows=flows, environment=env),
        )
    except DovetailError as exc:
        fail(str(exc))
        raise typer.Exit(exit_codes.RUNTIME_FAILURE) from None
    if as_json:
        print_json(
            {
                "selected": report.selected,
                "skipped_source_rejects": report.skipped_source_rejects,
                "unknown_flows": report.unknown_flows,
                "runs": [s.as_dict() for s in report.summaries],
            }
        )
        raise typer.Exit(exit_code_for(report.summaries))
    console.print(f"selected {report.selected} dead letter(s)")
    if report.skipped_source_rejects:
        console.print(
            f"skipped {report.skipped_source_rejects} rejected by the source (fix the input"
            " file and drop it again)"
        )
    if report.unknown_flows:
        console.print(f"left open: no flow file for {', '.join(report.unknown_flows)}")
    print_summaries(report.summaries, as_json=False)
    raise typer.Exit(exit_code_for(report.summaries))


async def _with_store(project: Project, action: Callable[[Store], Awaitable[T]]) -> T:
    from dovetail.api import open_store

    store = await open_store(project)
    try:
        return await action(store)
    finally:
        await store.close()


def _paths_of(project: Project, flow: str | None) -> list[str] | None:
    """The flow file whose ``flow:`` name is ``flow`` (any file name); None for all flows."""
    from dovetail.config.loader import load_flow

    if flow is None:
        return None
    for path in project.flow_paths():
        try:
            if load_flow(path, project, strict=False).name == flow:
                return [str(path)]
        except ConfigError:
            continue
    return [flow]  # not found by name: let the loader report it as a path or name


def _load_or_exit(
    project: Project, names: list[str] | None, env: str | None, *, strict: bool
) -> list[Flow]:
    from dovetail.cli.commands.project import load_flows

    try:
        return load_flows(project, names, environment=env, strict=strict)
    except ConfigError as exc:
        print_problems(exc.problems)
        raise typer.Exit(exit_codes.USAGE) from None


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except ConfigError as exc:
        print_problems(exc.problems)
        sys.exit(exit_codes.USAGE)
    except DovetailError as exc:
        fail(str(exc))
        sys.exit(exit_codes.RUNTIME_FAILURE)
