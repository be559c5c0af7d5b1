"""The flow file format and project settings, as pydantic models.

Component configs (under ``source``, ``steps``, ``sink``/``sinks``) are validated separately
against each component's own model from the registry; here they are plain mappings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dovetail.config.fields import JsonataExpr
from dovetail.config.types import Duration
from dovetail.plugins.spec import ComponentSpec, Kind

FLOW_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
"""Safe in paths and URLs; the kebab-case convention is the ``kebab-case-name`` lint rule."""
SEMVER = r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$"
TraceKeyPath = Annotated[
    str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$", max_length=200)
]
"""A dotted path of plain field names in a message (``customer.id``)."""
Detector = Literal["email", "card", "iban", "bearer", "jwt", "secret_keys"]
"""A built-in detector of sensitive values (``observability.detect``)."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class RetrySpec(Section):
    """Retries of transient failures: exponential backoff with full jitter."""

    attempts: int = Field(default=5, ge=1, le=100)
    """Total delivery attempts per message, the first included."""
    initial: Duration = 0.5
    """Upper bound of the first backoff (full jitter: the wait is random in [0, bound])."""
    max: Duration = 60.0
    """The backoff bound never grows beyond this."""
    multiplier: float = Field(default=2.0, ge=1.0, le=10.0)
    """Growth of the bound per attempt."""
    park_after: Duration | None = 10.0
    """Waits longer than this (a long backoff, a partner's ``Retry-After``) are parked in the
    store with their ``next_attempt_at``: the message is settled upstream, its worker moves on,
    and the flow's retry pump sends it again when it is due. ``null``: always wait in place."""


class CircuitSpec(Section):
    """A circuit breaker per sink: after consecutive failures, stop sending and probe later."""

    failures: int = Field(default=5, ge=1, le=1000)
    """Write calls failing transiently in a row that open the circuit."""
    reset: Duration = 30.0
    """How long the circuit stays open before one message probes the partner."""


class OrderingSpec(Section):
    """Per-key ordering: same-key messages reach each sink in source order."""

    key: JsonataExpr
    """JSONata over the input message giving its ordering key (e.g. ``customer_id``)."""


class DeliverySpec(Section):
    """How messages are delivered to sinks: idempotency, retries, dead letters."""

    idempotency_key: JsonataExpr | None = None
    """JSONata over the input message giving its idempotency key; a key already delivered to a
    sink is not delivered again, across restarts and replays."""
    retry: RetrySpec = RetrySpec()
    """Retry policy for transient failures (timeouts, connection errors, 429, 5xx)."""
    dead_letter: bool = True
    """Send permanently failed messages to the dead-letter queue (``false``: stop the flow)."""
    circuit_breaker: CircuitSpec | None = None
    """Open a sink's circuit after consecutive transient failures: nothing is sent and no
    attempt is spent until a probe gets through (the flow waits instead of dead-lettering)."""
    ordering: OrderingSpec | None = None
    """Deliver messages with the same key in source order, even across retries; messages of
    other keys are not held up (they run in other lanes)."""
    idempotency_retention: Duration = 30 * 86400.0
    """How long delivered idempotency keys are kept (default 30 days); older ones are purged
    when the flow starts."""


class TracingSettings(Section):
    """OpenTelemetry tracing (extra ``tracing``): a span per message, per step and per sink."""

    exporter: Literal["otlp", "console", "none"] = "none"
    """Where spans go: ``otlp`` (OTLP over HTTP to ``endpoint``), ``console`` (JSON lines on
    stderr, or appended to ``file``) or ``none`` (tracing off)."""
    endpoint: str | None = None
    """OTLP/HTTP traces URL (default: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
    ``http://localhost:4318/v1/traces``)."""
    file: str | None = None
    """With ``exporter: console``: append spans to this file (relative to the project)."""
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    """Share of messages traced, decided on the correlation id, so every flow a message
    crosses makes the same choice; an incoming ``traceparent``'s sampled flag wins."""
    service_name: str = "dovetail"
    """``service.name`` of the spans."""


class MetricsSettings(Section):
    """The Prometheus ``/metrics`` endpoint (extra ``metrics``)."""

    port: int | None = Field(default=None, ge=1, le=65535)
    """Serve ``/metrics`` on this port while flows run (``dovetail run --metrics-port``
    overrides it); ``null``: no endpoint."""
    host: str = "127.0.0.1"
    """Address to listen on; ``0.0.0.0`` to be scraped from other machines."""


class ProjectObservability(Section):
    """``observability:`` in ``dovetail.yaml``: metrics endpoint and tracing for every flow."""

    metrics: MetricsSettings = MetricsSettings()
    """The Prometheus endpoint."""
    tracing: TracingSettings = TracingSettings()
    """Tracing of every flow (a flow's own ``observability.tracing`` replaces it)."""


class ObservabilitySpec(Section):
    """What operators see."""

    mask: list[str] = Field(default_factory=list)
    """Dotted payload paths masked in logs, traces, DLQ views and docs."""
    detect: bool | list[Detector] = True
    """Built-in detectors masking values wherever they appear (log lines, DLQ views and
    reasons, ``dovetail trace``): ``true`` (all, the default), ``false`` (none, only the
    declared paths and registered secrets), or a list of ``email``, ``card`` (Luhn-valid),
    ``iban`` (mod-97-valid), ``bearer``, ``jwt``, ``secret_keys`` (values of keys like
    ``password``, ``token``, ``api_key``, ``Authorization``)."""
    log_payloads: Literal["none", "masked"] = "none"
    """Payloads in log lines: ``none`` (the default) never logs them; ``masked`` adds the
    masked input message to the line of each dead-lettered message."""
    tracing: TracingSettings | None = None
    """Tracing of this flow, replacing the project's ``observability.tracing``."""
    trace_keys: list[TraceKeyPath] = Field(default_factory=list, max_length=10)
    """Dotted paths of business keys in the input message (e.g. ``order_id``,
    ``customer.id``): each message's values are recorded with its journal, so
    ``dovetail trace ORD-00257`` finds it. The idempotency key is always recorded; a masked
    path cannot be a trace key."""

    @model_validator(mode="after")
    def _trace_keys_are_not_masked(self) -> ObservabilitySpec:
        masked = [path for path in self.trace_keys if path in self.mask]
        if masked:
            raise ValueError(
                f"trace_keys: {', '.join(masked)} is masked (observability.mask); a masked"
                " value is never stored as a trace key"
            )
        return self


class RuntimeSpec(Section):
    """Throughput knobs; the defaults suit most flows."""

    batch_size: int = Field(default=500, ge=1, le=100_000)
    """Messages per batch between stages."""
    workers: int = Field(default=2, ge=1, le=64)
    """Batches processed concurrently."""
    queue: int = Field(default=4, ge=1, le=1024)
    """Batches buffered between the source and the workers (back-pressure beyond it)."""
    drain_timeout: Duration = 30.0
    """On SIGTERM/Ctrl-C, time allowed to finish in-flight batches; what is unfinished then
    stays unacknowledged and is read again on the next start."""
    batch_timeout: Duration = Field(default=10.0, gt=0)
    """Longest a batch waits in place, in all, for its messages' retries at a sink. Each
    message is settled as soon as it is delivered, whatever its batch-mates do; a retry wait
    that would take the batch's time spent waiting past this is parked in the store instead
    (like a wait longer than `delivery.retry.park_after`), so it no longer holds the batch and
    its worker. Without a store, or with `park_after: null`, retries are always waited for in
    place."""


class FlowFile(Section):
    """A flow: one source, ordered steps, one sink (``sink``) or several named ones (``sinks``)."""

    flow: str = Field(pattern=FLOW_NAME, max_length=100)
    """Unique flow name, kebab-case."""
    version: str = Field(default="0.1.0", pattern=SEMVER)
    """Semantic version, recorded on every message and in the docs."""
    description: str = ""
    """One line on what the flow does."""
    owner: str | None = None
    """Team or person responsible for the flow."""
    source: dict[str, Any]
    """The source component: a mapping with one key, the component name."""
    steps: list[Any] = Field(default_factory=list)
    """Steps in order; each a mapping with one key, the component name."""
    sink: dict[str, Any] | None = None
    """The only sink (use ``sinks`` for several)."""
    sinks: dict[str, dict[str, Any]] | None = None
    """Named sinks; a ``route`` step chooses among them (default: every sink)."""
    delivery: DeliverySpec = DeliverySpec()
    observability: ObservabilitySpec = ObservabilitySpec()
    runtime: RuntimeSpec = RuntimeSpec()

    @model_validator(mode="after")
    def _one_kind_of_sink(self) -> FlowFile:
        if (self.sink is None) == (self.sinks is None):
            raise ValueError("declare exactly one of 'sink' or 'sinks'")
        if self.sinks is not None and not self.sinks:
            raise ValueError("'sinks' needs at least one named sink")
        return self


class VaultSettings(Section):
    """HashiCorp Vault, read for ``${secret:NAME}`` after the environment and secret files."""

    url: str
    """Vault address, e.g. ``https://vault.example.com:8200`` (``${env:VAULT_ADDR}`` works)."""
    mount: str = "secret"
    """Mount point of the KV secrets engine."""
    path: str
    """Path of the secret within the mount; ``${secret:NAME}`` reads its key ``NAME``."""
    kv_version: Literal[1, 2] = 2
    """KV secrets engine version."""
    token_env: str | None = "VAULT_TOKEN"
    """Environment variable holding a Vault token (used when no AppRole is configured)."""
    role_id_env: str | None = None
    """Environment variable holding an AppRole ``role_id`` (with ``secret_id_env``)."""
    secret_id_env: str | None = None
    """Environment variable holding an AppRole ``secret_id``."""
    namespace: str | None = None
    """Vault Enterprise namespace."""
    ca_cert: str | None = None
    """CA bundle to verify Vault's TLS certificate, relative to the project."""
    timeout: Duration = 10.0
    """Timeout of each request to Vault."""


class SecretsSettings(Section):
    files: list[str] = Field(default_factory=list)
    """Folders holding one file per secret (``/run/secrets`` style), relative to the project."""
    vault: VaultSettings | None = None
    """HashiCorp Vault (extra ``vault``), read after the environment and secret files."""


class LintSettings(Section):
    """``lint:`` in ``dovetail.yaml``: governance rules as policy (see docs/governance.md)."""

    rules: dict[str, Literal["error", "warning", "off"]] = Field(default_factory=dict)
    """Severity per rule id (``kebab-case-name: warning``); rules not listed keep their
    default severity."""
    plugins: list[str] = Field(default_factory=list)
    """Python modules of the project (``my_rules`` for ``my_rules.py``) holding custom rules;
    packages installed with a ``dovetail.lint_rules`` entry point are loaded as well."""


class ProjectSettings(Section):
    """``dovetail.yaml``: settings shared by every flow of the project."""

    project: str | None = None
    """Project name, shown in docs."""
    store: str | None = None
    """State store URL; default SQLite under ``.dovetail/``. ``DOVETAIL_STORE`` overrides it."""
    flows: str = "flows"
    """Folder of flow files."""
    secrets: SecretsSettings = SecretsSettings()
    environments: str = "environments"
    """Folder of ``<env>.yaml`` override files."""
    lint: LintSettings = LintSettings()
    """Governance rules checked by ``dovetail lint``: their severity and custom rule plugins."""
    observability: ProjectObservability = ProjectObservability()
    """Metrics endpoint and tracing (see docs/observability.md)."""


class EnvironmentFile(Section):
    """``environments/<env>.yaml``: variables and per-flow overrides for one environment."""

    vars: dict[str, str | int | float | bool] = Field(default_factory=dict)
    """Values for ``${var:NAME}``."""
    flows: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per flow name, a partial flow file deep-merged over the flow."""


@dataclass
class ComponentRef:
    """A component as declared in a flow: its spec, validated config and where it was written."""

    kind: Kind
    spec: ComponentSpec
    config: Any
    label: str
    """Display name: the sink name, or ``steps[2].lookup``."""
    loc: tuple[Any, ...]


@dataclass
class Flow:
    """A loaded, validated flow, ready to build."""

    spec: FlowFile
    path: Path
    project_dir: Path
    source: ComponentRef
    steps: list[ComponentRef]
    sinks: dict[str, ComponentRef]
    environment: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.flow

    @property
    def version(self) -> str:
        return self.spec.version


Mode = Literal["run", "lint", "test"]
