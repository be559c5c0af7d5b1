"""``dovetail test``: run flow test cases offline; pass/fail table; JUnit XML."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

from dovetail.config.loader import Project
from dovetail.config.model import Flow
from dovetail.testing.cases import discover_cases
from dovetail.testing.harness import CaseResult, run_case


async def run_cases(project: Project, flows: list[Flow]) -> list[CaseResult]:
    """Every case of every flow, in order."""
    results: list[CaseResult] = []
    for flow in flows:
        for case in discover_cases(project.root, flow.name):
            results.append(await run_case(flow, case))
    return results


def write_junit(results: list[CaseResult], path: Path) -> None:
    """JUnit XML: one testsuite per flow, one testcase per case."""
    root = ET.Element("testsuites", name="dovetail")
    suites: dict[str, ET.Element] = {}
    for result in results:
        flow = result.case.flow
        if flow not in suites:
            suites[flow] = ET.SubElement(root, "testsuite", name=flow)
        case = ET.SubElement(
            suites[flow],
            "testcase",
            classname=flow,
            name=result.case.name,
            time=f"{result.seconds:.3f}",
            file=str(result.case.path),
        )
        if not result.passed:
            failure = ET.SubElement(case, "failure", message=result.failures[0])
            failure.text = "\n".join(result.failures)
    for suite in suites.values():
        cases = suite.findall("testcase")
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    root.set("tests", str(len(results)))
    root.set("failures", str(sum(1 for r in results if not r.passed)))
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
