"""Turn a project's ``observability:`` settings into running observers for ``dovetail run``.

``observe_project`` starts the ``/metrics`` endpoint when a port is configured (or given on
the command line) and installs the metrics and tracing observers for every flow started in
the process afterwards. It returns a function that stops the endpoint and flushes spans.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dovetail.errors import DovetailError, MissingExtraError
from dovetail.observability.events import FlowObserver, install

if TYPE_CHECKING:
    from dovetail.config.loader import Project
    from dovetail.config.model import Flow, TracingSettings
    from dovetail.observability.tracing import TracingObserver


def _missing(extra: str, error: ImportError) -> MissingExtraError:
    return MissingExtraError(
        f"{extra} need the '{extra}' extra ({error.name} is not installed):"
        f" pip install 'dovetail[{extra}]'"
    )


def observe_project(project: Project, *, metrics_port: int | None = None) -> Callable[[], None]:
    """Start what ``project``'s settings (and ``metrics_port``) ask for; returns the stop.

    Raises ``MissingExtraError`` when an extra is missing or the port cannot be bound.
    """
    settings = project.settings.observability
    stops: list[Callable[[], None]] = []
    port = metrics_port if metrics_port is not None else settings.metrics.port
    if port is not None:
        try:
            from dovetail.observability.metrics import MetricsObserver, serve_metrics

            metrics = MetricsObserver()
        except ImportError as exc:
            raise _missing("metrics", exc) from None
        try:
            server = serve_metrics(metrics, port, settings.metrics.host)
        except OSError as exc:
            raise DovetailError(
                f"cannot serve /metrics on {settings.metrics.host}:{port}: {exc}"
            ) from None
        stops.append(install(lambda _flow: metrics))
        stops.append(server.shutdown)
        stops.append(server.server_close)
    tracing = _TracingObservers(project, settings.tracing)
    stops.append(install(tracing.for_flow))
    stops.append(tracing.shutdown)

    def stop() -> None:
        for step in reversed(stops):
            step()

    return stop


class _TracingObservers:
    """One tracing observer per distinct tracing setting (project-wide or a flow's own)."""

    def __init__(self, project: Project, default: TracingSettings) -> None:
        self.project = project
        self.default = default
        self.observers: dict[TracingSettings, TracingObserver] = {}

    def for_flow(self, flow: Flow) -> FlowObserver | None:
        settings = flow.spec.observability.tracing or self.default
        if settings.exporter == "none":
            return None
        observer = self.observers.get(settings)
        if observer is None:
            try:
                from dovetail.observability import tracing
            except ImportError as exc:
                raise _missing("tracing", exc) from None
            provider = tracing.tracer_provider(settings, self.project.root)
            observer = tracing.TracingObserver(provider)
            self.observers[settings] = observer
        return observer

    def shutdown(self) -> None:
        for observer in self.observers.values():
            observer.provider.shutdown()
