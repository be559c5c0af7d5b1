"""``dovetail test``: run flow test cases offline; pass/fail table; JUnit XML; evidence report."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from dovetail.cli.render import console, print_json, table
from dovetail.config.loader import Project
from dovetail.config.model import Flow
from dovetail.observability.redaction import redact
from dovetail.testing.cases import discover_cases
from dovetail.testing.evidence import write_evidence
from dovetail.testing.harness import CaseResult, run_case

__all__ = ["print_results", "run_cases", "write_evidence", "write_junit"]


async def run_cases(
    project: Project, flows: list[Flow], *, update_golden: bool = False
) -> list[CaseResult]:
    """Every case of every flow, in order; ``update_golden`` rewrites golden files that differ."""
    results: list[CaseResult] = []
    for flow in flows:
        for case in discover_cases(project.root, flow.name):
            results.append(await run_case(flow, case, update_golden=update_golden))
    return results


def _properties(parent: ET.Element, values: dict[str, object]) -> None:
    properties = ET.SubElement(parent, "properties")
    for name, value in values.items():
        ET.SubElement(properties, "property", name=name, value=str(value))


def write_junit(results: list[CaseResult], path: Path) -> None:
    """JUnit XML: one testsuite per flow (property ``flow_version``), one testcase per case
    (properties ``flow_version``, ``retries``, and ``partner_requests`` with a partner)."""
    root = ET.Element("testsuites", name="dovetail")
    suites: dict[str, ET.Element] = {}
    for result in results:
        flow = result.case.flow
        if flow not in suites:
            suites[flow] = ET.SubElement(root, "testsuite", name=flow)
            _properties(suites[flow], {"flow_version": result.flow_version})
        case = ET.SubElement(
            suites[flow],
            "testcase",
            classname=flow,
            name=result.case.name,
            time=f"{result.seconds:.3f}",
            file=str(result.case.path),
        )
        values: dict[str, object] = {"flow_version": result.flow_version}
        if result.run is not None:
            values["retries"] = result.run.summary.retries
            if result.run.partner is not None:
                values["partner_requests"] = result.run.partner.requests
        _properties(case, values)
        if not result.passed:
            failure = ET.SubElement(case, "failure", message=result.failures[0].splitlines()[0])
            failure.text = "\n".join(result.failures)
    for suite in suites.values():
        cases = suite.findall("testcase")
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    root.set("tests", str(len(results)))
    root.set("failures", str(sum(1 for r in results if not r.passed)))
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def print_results(project: Project, results: list[CaseResult], *, as_json: bool) -> None:
    """The verdicts: JSON, or a table with each failure's first line, then the full text of
    longer failures (golden diffs) and the golden files rewritten."""
    if as_json:
        rows: list[dict[str, Any]] = [
            {
                "flow": r.case.flow,
                "case": r.case.name,
                "passed": r.passed,
                "failures": r.failures,
                "updated": [project.display(p) for p in r.updated],
            }
            for r in results
        ]
        print_json(rows)
        return
    table(
        None,
        ["flow", "case", "result", "detail"],
        [
            [
                r.case.flow,
                r.case.name,
                "PASS" if r.passed else "FAIL",
                "; ".join(f.splitlines()[0] for f in r.failures),
            ]
            for r in results
        ],
    )
    for result in results:
        for failure in result.failures:
            if "\n" in failure:
                console.print(f"\n{result.case.flow} / {result.case.name}:", markup=False)
                console.print(redact(failure), markup=False)
    for result in results:
        for path in result.updated:
            console.print(f"updated golden file {project.display(path)}", markup=False)
    passed = sum(r.passed for r in results)
    console.print(f"{passed} passed, {len(results) - passed} failed")
