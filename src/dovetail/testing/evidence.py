"""A Markdown evidence report of a ``dovetail test`` run, for change tickets and audits.

The report names the project, each flow with its version and owner, the git commit of the
project (and whether the working tree had uncommitted changes), the date and the environment
(Dovetail, Python, platform), then every case: its input, the expectations, what came out,
what was dead-lettered and the verdict, and the totals. Payloads and texts are masked with
each flow's ``observability`` policy (its ``mask:`` paths and detectors), so the report can be
attached to a ticket.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from dovetail.config.loader import Project
from dovetail.config.model import Flow
from dovetail.observability.masking import MaskPolicy
from dovetail.testing.harness import CaseResult


@dataclass(frozen=True)
class GitState:
    """The commit a project is at, and whether its working tree differs from it."""

    commit: str | None
    dirty: bool = False

    def describe(self) -> str:
        """``abc123… (uncommitted changes)`` or ``not a git repository``."""
        if self.commit is None:
            return "not a git repository (or git is not installed)"
        return self.commit + (" (with uncommitted changes)" if self.dirty else "")


def git_state(folder: Path) -> GitState:
    """The git commit of the repository holding ``folder``, if any."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(folder), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return GitState(commit=None)
    status = git("status", "--porcelain", "--", ".")
    return GitState(commit=commit, dirty=bool(status))


def environment_lines() -> list[tuple[str, str]]:
    """Versions of what ran the tests."""
    from dovetail import __version__

    return [
        ("Dovetail", __version__),
        ("Python", platform.python_version()),
        ("Platform", platform.platform(terse=True)),
    ]


def _json_block(value: Any) -> list[str]:
    text = orjson.dumps(value, default=str, option=orjson.OPT_INDENT_2).decode()
    return ["```json", *text.splitlines(), "```"]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class EvidenceWriter:
    """Builds the report; ``render()`` gives the Markdown text."""

    def __init__(
        self,
        project: Project,
        flows: Sequence[Flow],
        results: Sequence[CaseResult],
        *,
        now: datetime | None = None,
        git: GitState | None = None,
    ) -> None:
        self.project = project
        self.flows = {flow.name: flow for flow in flows}
        self.results = list(results)
        self.now = now or datetime.now(UTC)
        self.git = git if git is not None else git_state(project.root)

    def render(self) -> str:
        """The whole report as Markdown."""
        passed = sum(r.passed for r in self.results)
        failed = len(self.results) - passed
        name = self.project.settings.project or self.project.root.name
        lines = [f"# Test evidence: {name}", ""]
        lines += ["| | |", "| --- | --- |"]
        lines += [f"| Project | {_cell(name)} |"]
        lines += [f"| Date | {self.now.isoformat(timespec='seconds')} |"]
        lines += [f"| Git commit | {_cell(self.git.describe())} |"]
        lines += [f"| {label} | {_cell(value)} |" for label, value in environment_lines()]
        verdict = "PASSED" if failed == 0 and self.results else "FAILED"
        lines += [f"| Result | **{verdict}**: {passed} passed, {failed} failed |", ""]
        lines += self._flows_table()
        for flow_name in self._flow_order():
            lines += self._flow_section(flow_name)
        lines += ["## Totals", "", f"- cases: {len(self.results)}"]
        lines += [f"- passed: {passed}", f"- failed: {failed}", ""]
        return "\n".join(lines)

    def write(self, path: Path) -> None:
        """Write the report to ``path`` (folders created)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.render(), encoding="utf-8")

    def _flow_order(self) -> list[str]:
        order: list[str] = []
        for result in self.results:
            if result.case.flow not in order:
                order.append(result.case.flow)
        return order

    def _flows_table(self) -> list[str]:
        lines = ["## Flows", "", "| flow | version | owner | file | cases | passed | failed |"]
        lines.append("| --- | --- | --- | --- | --- | --- | --- |")
        for flow_name in self._flow_order():
            flow = self.flows.get(flow_name)
            mine = [r for r in self.results if r.case.flow == flow_name]
            ok = sum(r.passed for r in mine)
            version = flow.version if flow is not None else mine[0].flow_version
            owner = (flow.spec.owner or "") if flow is not None else ""
            shown = self.project.display(flow.path) if flow is not None else ""
            lines.append(
                f"| {_cell(flow_name)} | {_cell(version)} | {_cell(owner)} | {_cell(shown)}"
                f" | {len(mine)} | {ok} | {len(mine) - ok} |"
            )
        return [*lines, ""]

    def _policy(self, flow_name: str) -> MaskPolicy:
        flow = self.flows.get(flow_name)
        return MaskPolicy.of_spec(flow.spec.observability) if flow is not None else MaskPolicy()

    def _flow_section(self, flow_name: str) -> list[str]:
        flow = self.flows.get(flow_name)
        version = flow.version if flow is not None else ""
        lines = [f"## Flow `{flow_name}` {version}".rstrip(), ""]
        for result in self.results:
            if result.case.flow == flow_name:
                lines += self._case_section(result, self._policy(flow_name))
        return lines

    def _case_section(self, result: CaseResult, policy: MaskPolicy) -> list[str]:
        case = result.case
        spec = case.spec
        verdict = "PASS" if result.passed else "FAIL"
        lines = [f"### {verdict}: {case.name}", ""]
        lines.append(f"- case file: `{self.project.display(case.path)}`")
        inputs: list[Any] = []
        if spec.input.file is not None:
            source = case.path.parent / spec.input.file
            lines.append(
                f"- input file: `{self.project.display(source)}` (sha256 {_sha256(source)})"
            )
        elif spec.input.messages is not None:
            inputs = list(spec.input.messages)
        else:
            inputs = [spec.input.message]
        run = result.run
        if run is not None:
            summary = run.summary
            lines.append(
                f"- received {summary.received}, delivered {summary.delivered_total},"
                f" filtered {summary.filtered}, dead-lettered {summary.dead_lettered},"
                f" retries {summary.retries}"
            )
            if run.partner is not None:
                stats = run.partner
                lines.append(
                    f"- partner: {stats.requests} requests, {len(stats.accepted)} accepted,"
                    f" {stats.duplicates} duplicates (sinks: {', '.join(stats.sinks) or 'none'})"
                )
        for path in result.updated:
            lines.append(f"- golden file rewritten: `{self.project.display(path)}`")
        lines.append("")
        if inputs:
            lines += ["Input (masked):", "", *_json_block(policy.payload(inputs)), ""]
        expect = spec.expect.model_dump(exclude_none=True)
        delivered = expect.get("delivered")
        if isinstance(delivered, dict):
            expect["delivered"] = {k: policy.payload(v) for k, v in delivered.items()}
        elif isinstance(delivered, list):
            expect["delivered"] = policy.payload(delivered)
        if spec.partner is not None:
            expect = {"partner": spec.partner.model_dump(exclude_none=True), **expect}
        lines += ["Expectations (masked):", "", *_json_block(policy.payload(expect)), ""]
        outputs: dict[str, Any] = {}
        if run is not None:
            outputs = {sink: policy.payload(items) for sink, items in run.delivered.items()}
            lines += ["Output per sink (masked):", "", *_json_block(outputs), ""]
            if run.dead_letters:
                lines += ["Dead letters:", ""]
                for letter in run.dead_letters:
                    reason = policy.text(letter.reason, payload=[letter.payload])
                    lines.append(f"- `{letter.step}`: {_cell(reason)}")
                lines.append("")
        known = [*inputs, *(run.delivered.values() if run is not None else [])]
        wanted = spec.expect.delivered
        known += list(wanted.values()) if isinstance(wanted, dict) else [wanted or []]
        if case.golden_path.is_file():
            golden = orjson.loads(case.golden_path.read_bytes())
            known += list(golden.values()) if isinstance(golden, dict) else [golden]
        if result.passed:
            lines += ["Result: **PASS**", ""]
        else:
            lines += ["Result: **FAIL**", ""]
            for failure in result.failures:
                masked = policy.text(failure, payload=known)
                first, *rest = masked.splitlines() or [""]
                lines.append(f"- {first}")
                if rest:
                    lines += ["", "```diff", *rest, "```"]
            lines.append("")
        return lines


def write_evidence(
    path: Path, project: Project, flows: Sequence[Flow], results: Sequence[CaseResult]
) -> None:
    """Write the Markdown evidence report of ``results`` to ``path``."""
    EvidenceWriter(project, flows, results).write(path)
