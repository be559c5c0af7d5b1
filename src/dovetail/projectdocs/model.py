"""What the interface documentation of a project holds, independent of how it is rendered.

Everything here is already safe to show: configuration text is taken from the flow file as
written (``${secret:NAME}`` stays a reference, never its value), credentials in URLs are
removed, and values of masked fields are replaced by ``***``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

RefKind = Literal["env", "secret", "var"]


@dataclass(frozen=True, slots=True)
class EndpointDoc:
    """A source or a sink: the component, the system it talks to and how it is triggered."""

    label: str
    """The sink name (``erp``), or ``source``."""
    component: str
    """The component name (``http``, ``file``, ``sql``...)."""
    target: str
    """Where it reads or writes, credentials removed (``POST ${env:ERP_URL}/sales-orders``)."""
    trigger: str = ""
    """For a source: when it produces messages (cron, polling interval, on request)."""
    rate_limit: str | None = None
    """The sink's ``rate_limit`` as written."""
    status_overrides: dict[str, list[int]] = field(default_factory=dict)
    """HTTP sinks: ``already_delivered``, ``permanent``, ``transient`` and ``success`` codes."""
    auth: str | None = None
    """HTTP sinks: the authentication scheme (``oauth2_client_credentials``), never secrets."""


@dataclass(frozen=True, slots=True)
class RouteDoc:
    """One branch of a ``route`` step: the condition and the sinks it sends to."""

    when: str
    to: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StepDoc:
    """One step: its component, a one-line summary and, for ``route``, its branches."""

    index: int
    component: str
    summary: str
    routes: tuple[RouteDoc, ...] = ()
    otherwise: str | tuple[str, ...] | None = None
    """``route`` only: sinks for unmatched messages, ``dead_letter`` or ``drop``."""


@dataclass(frozen=True, slots=True)
class MappingRowDoc:
    """One row of a mapping sheet as shown in the docs."""

    target: str
    source: str
    transform: str
    required: bool
    note: str


@dataclass(frozen=True, slots=True)
class MappingDoc:
    """A ``map`` step: a sheet's rows, or a JSONata expression shown as code."""

    step: int
    file: str | None
    rows: tuple[MappingRowDoc, ...] = ()
    jsonata: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class FieldRuleDoc:
    """What a JSON Schema requires of one field."""

    path: str
    types: str
    required: bool
    constraints: str
    pattern: str | None = None


@dataclass(frozen=True, slots=True)
class ValidationDoc:
    """A ``validate`` step: JSON Schema rules summarised, or the XSD it references."""

    step: int
    file: str
    kind: Literal["json-schema", "xsd"]
    title: str | None = None
    rules: tuple[FieldRuleDoc, ...] = ()
    problem: str | None = None
    """Why the schema could not be summarised (it is still enforced at run time)."""


@dataclass(frozen=True, slots=True)
class DeliveryDoc:
    """Error handling as declared under ``delivery:`` and by the steps."""

    idempotency_key: str | None
    attempts: int
    initial: float
    max: float
    multiplier: float
    park_after: float | None
    dead_letter: bool
    circuit_failures: int | None
    circuit_reset: float | None
    ordering_key: str | None
    idempotency_retention: float
    step_failures: tuple[str, ...] = ()
    """What each step does with a message it cannot handle (``lookup: dead letter``...)."""


@dataclass(frozen=True, slots=True)
class ReferenceUse:
    """Whether one reference is defined in one environment."""

    environment: str
    status: str
    """``defined``, ``missing``, ``not used``, ``at run time`` or ``default``."""
    value: str | None = None
    """Only for ``${var:}`` values that do not look like secrets."""


@dataclass(frozen=True, slots=True)
class ReferenceDoc:
    """A ``${env:}``, ``${secret:}`` or ``${var:}`` reference and where the flow uses it."""

    kind: RefKind
    name: str
    used_at: tuple[str, ...]
    fallback: str | None
    per_environment: tuple[ReferenceUse, ...] = ()


@dataclass(frozen=True, slots=True)
class FlowDoc:
    """Everything documented about one flow."""

    name: str
    version: str
    description: str
    owner: str | None
    file: str
    status: str
    source: EndpointDoc
    steps: tuple[StepDoc, ...]
    sinks: tuple[EndpointDoc, ...]
    mappings: tuple[MappingDoc, ...]
    validations: tuple[ValidationDoc, ...]
    delivery: DeliveryDoc
    references: tuple[ReferenceDoc, ...]
    mask: tuple[str, ...]
    test_cases: int = 0
    example: Any = None
    """A masked example input message from the flow's first test case, if any."""


@dataclass(frozen=True, slots=True)
class InvalidFlowDoc:
    """A flow file that does not load: listed in the catalog with its problems."""

    file: str
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ProjectDoc:
    """The documented project: its flows and the environments they were checked against."""

    name: str
    flows: tuple[FlowDoc, ...]
    invalid: tuple[InvalidFlowDoc, ...]
    environments: tuple[str, ...]
    selected_environment: str | None = None
