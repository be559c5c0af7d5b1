"""Document a whole project: load every flow leniently, collect its model, write the pages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dovetail.config.loader import Project, load_environment, load_flow
from dovetail.errors import ConfigError
from dovetail.observability.redaction import redact
from dovetail.projectdocs.collect import flow_doc
from dovetail.projectdocs.html import site
from dovetail.projectdocs.model import FlowDoc, InvalidFlowDoc, ProjectDoc
from dovetail.projectdocs.pages import catalog, flow_file, flow_page
from dovetail.projectdocs.references import EnvironmentView, collect_references


@dataclass(frozen=True, slots=True)
class _Environment:
    name: str
    variables: dict[str, object]
    flows: dict[str, dict[str, object]]


def environment_names(project: Project) -> list[str]:
    """The environments of the project: the ``<env>.yaml`` files of its environments folder."""
    folder = project.root / project.settings.environments
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def document_project(
    project: Project, paths: list[Path] | None = None, *, environment: str | None = None
) -> ProjectDoc:
    """The documentation model of ``paths`` (default: every flow of the project).

    With ``environment``, that environment's overrides are layered over the flows and only it
    is reported on; otherwise every environment file is. Raises ``ConfigError`` when an
    environment file is invalid; a flow that does not load is listed in ``invalid``.
    """
    names = [environment] if environment is not None else environment_names(project)
    environments = []
    for name in names:
        loaded = load_environment(project, name)
        environments.append(_Environment(name, dict(loaded.vars), dict(loaded.flows)))
    flows: list[FlowDoc] = []
    invalid: list[InvalidFlowDoc] = []
    for path in paths if paths is not None else project.flow_paths():
        shown = project.display(path)
        try:
            flow = load_flow(path, project, environment=environment, strict=False)
            views = [
                EnvironmentView(env.name, env.variables, env.flows.get(flow.name))
                for env in environments
            ]
            references = collect_references(flow.raw, views)
            flows.append(flow_doc(flow, shown, references))
        except ConfigError as exc:
            invalid.append(InvalidFlowDoc(shown, tuple(str(p) for p in exc.problems)))
        except OSError as exc:
            invalid.append(InvalidFlowDoc(shown, (f"{shown}: {exc.strerror or exc}",)))
    return ProjectDoc(
        name=project.settings.project or project.root.name,
        flows=tuple(sorted(flows, key=lambda f: f.name)),
        invalid=tuple(invalid),
        environments=tuple(names),
        selected_environment=environment,
    )


def render_pages(doc: ProjectDoc) -> dict[str, str]:
    """Every Markdown page by its path relative to the output folder (secrets redacted)."""
    pages = {"index.md": catalog(doc)}
    for flow in doc.flows:
        pages[flow_file(flow.name)] = flow_page(flow, doc)
    return {path: redact(body) for path, body in pages.items()}


def write_docs(doc: ProjectDoc, out: Path, *, html: bool = False) -> list[Path]:
    """Write the Markdown pages (or, with ``html``, the HTML site) under ``out``."""
    pages = render_pages(doc)
    files = site(pages, doc) if html else pages
    written: list[Path] = []
    for relative, body in files.items():
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body, encoding="utf-8")
        written.append(target)
    return written
