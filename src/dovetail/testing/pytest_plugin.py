"""pytest fixtures for testing a Dovetail project's flows from its own test suite.

Enable it in a ``conftest.py`` (or rely on the ``pytest11`` entry point)::

    pytest_plugins = ["dovetail.testing.pytest_plugin"]

Fixtures:

- ``dovetail_project``: the project at pytest's rootdir, or at the path given by the
  ``@pytest.mark.dovetail_project("path/to/project")`` marker (relative to the rootdir). It
  loads flows (leniently, as ``dovetail test`` does), lists and runs their case files.
- ``run_flow``: ``run_flow("orders-to-erp", [message, ...])`` runs a flow offline and returns
  an ``OfflineRun``: ``delivered`` (payloads per sink), ``dead_letters`` and ``summary``.
  ``input_file=`` reads a file through the flow's own source; ``partner=`` sends the flow's
  http sinks to a ``PartnerServer`` instead of capturing them.
- ``partner``: a started ``PartnerServer`` serving the resource paths of the project's http
  sinks (``@pytest.mark.partner(paths=[...], client_id=..., ...)`` passes its own arguments).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import anyio
import pytest

from dovetail.config.loader import PROJECT_FILE, Project, load_flow, load_project
from dovetail.config.model import Flow
from dovetail.errors import ConfigError
from dovetail.testing.cases import FlowCase, discover_cases
from dovetail.testing.harness import CaseResult, OfflineRun, run_case, run_offline
from dovetail.testing.partner import PartnerServer
from dovetail.testing.partner_run import Role, detect_paths


def pytest_configure(config: pytest.Config) -> None:
    """Declare the plugin's markers (the project runs pytest with ``--strict-markers``)."""
    config.addinivalue_line(
        "markers",
        "dovetail_project(path): the Dovetail project the dovetail_project fixture loads,"
        " relative to the rootdir",
    )
    config.addinivalue_line(
        "markers", "partner(**options): keyword arguments of the partner fixture's PartnerServer"
    )


class DovetailProject:
    """A Dovetail project under test: its flows, their case files, offline runs."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self._flows: dict[str, Flow] = {}

    @property
    def root(self) -> Path:
        """The project folder (where ``dovetail.yaml`` is)."""
        return self.project.root

    def flow(self, name: str | Path) -> Flow:
        """A flow by name (``flows/<name>.yaml``) or by file path, loaded once.

        Loaded as ``dovetail test`` loads flows: unset ``${env:}`` and ``${secret:}``
        references are kept as written. Raises ``ConfigError`` for an invalid flow.
        """
        key = str(name)
        if key not in self._flows:
            path = Path(name)
            if not path.suffix:
                path = self.project.flows_dir / f"{name}.yaml"
            elif not path.is_absolute():
                path = self.root / path
            self._flows[key] = load_flow(path, self.project, strict=False)
        return self._flows[key]

    def flows(self) -> list[Flow]:
        """Every flow of the project."""
        return [self.flow(path) for path in self.project.flow_paths()]

    def cases(self, flow: str) -> list[FlowCase]:
        """The case files under ``tests/<flow>/``."""
        return discover_cases(self.root, flow)

    def run_case(self, case: FlowCase, *, update_golden: bool = False) -> CaseResult:
        """Run one case file as ``dovetail test`` does."""
        flow = self.flow(case.flow)
        return anyio.run(lambda: run_case(flow, case, update_golden=update_golden))


class RunFlow(Protocol):
    """The ``run_flow`` fixture's signature."""

    def __call__(
        self,
        flow: str | Path | Flow,
        messages: Sequence[Any] | None = None,
        *,
        input_file: Path | None = None,
        partner: PartnerServer | None = None,
        partner_env: dict[str, Role] | None = None,
    ) -> OfflineRun: ...


def _project_path(request: pytest.FixtureRequest) -> Path:
    marker = request.node.get_closest_marker("dovetail_project")
    base = request.config.rootpath
    if marker is None or not marker.args:
        return base
    return base / str(marker.args[0])


@pytest.fixture
def dovetail_project(request: pytest.FixtureRequest) -> DovetailProject:
    """The Dovetail project at the rootdir (or the ``dovetail_project`` marker's path)."""
    path = _project_path(request)
    project = load_project(path)
    if not (project.root / PROJECT_FILE).is_file():
        pytest.fail(f"no {PROJECT_FILE} at or above {path}", pytrace=False)
    return DovetailProject(project)


@pytest.fixture
def run_flow(dovetail_project: DovetailProject) -> RunFlow:
    """Run a flow of ``dovetail_project`` offline (sinks captured, fake clock, fresh store)."""

    def run(
        flow: str | Path | Flow,
        messages: Sequence[Any] | None = None,
        *,
        input_file: Path | None = None,
        partner: PartnerServer | None = None,
        partner_env: dict[str, Role] | None = None,
    ) -> OfflineRun:
        loaded = flow if isinstance(flow, Flow) else dovetail_project.flow(flow)
        items = list(messages) if messages is not None else None
        return anyio.run(
            lambda: run_offline(
                loaded,
                messages=items,
                input_file=input_file,
                partner=partner,
                partner_env=partner_env,
            )
        )

    return run


def _project_sink_paths(path: Path) -> list[str]:
    project = load_project(path)
    if not (project.root / PROJECT_FILE).is_file():
        return []
    paths: list[str] = []
    for flow_path in project.flow_paths():
        try:
            flow = load_flow(flow_path, project, strict=False)
        except ConfigError:
            continue
        paths += [p for p in detect_paths(flow) if p not in paths]
    return paths


@pytest.fixture
def partner(request: pytest.FixtureRequest) -> Iterator[PartnerServer]:
    """A started fault-injecting ``PartnerServer``; stopped after the test."""
    marker = request.node.get_closest_marker("partner")
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    if "paths" not in options:
        options["paths"] = _project_sink_paths(_project_path(request)) or ["/sales-orders"]
    with PartnerServer(**options) as server:
        yield server
