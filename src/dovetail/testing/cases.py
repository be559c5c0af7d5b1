"""Flow test cases: ``tests/<flow>/<case>.yaml`` files next to the flows they test.

A case gives the input and what must come out::

    name: a valid order reaches the ERP
    input:
      file: orders.csv              # parsed by the flow's own file source (relative to the case)
      # or  messages: [{...}, {...}]  /  message: {...}
    expect:
      delivered:                    # per sink: the exact payloads, in order...
        erp: [{order_id: A-1, ...}]
      delivered_count: {erp: 1}     # ...or only how many
      dead_letters:                 # each expected dead letter: step and a reason fragment
        - {step: lookup, reason: "not found", input: 0}
      filtered: 0
      golden: true                  # all sink output equals tests/<flow>/<case>.golden.json
      retries: 2                    # with a partner (below): transient failures retried
      partner_requests: 3           # requests the partner's resource paths received
      duplicates: 0                 # messages the partner accepted more than once
    partner:                        # http sinks go to a local fault-injecting partner
      script: {"/sales-orders": [503, 429, 201]}
      faults: {ratio: 0.3, kinds: [500, 503, 429], seed: 7}

Sinks are captured (nothing is sent anywhere) unless the case has a ``partner:``; a fresh
store is used per case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dovetail.config.yaml_positions import load_yaml
from dovetail.errors import ConfigError, Problem


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CaseInput(_Model):
    file: str | None = None
    messages: list[Any] | None = None
    message: Any = None

    @model_validator(mode="after")
    def _exactly_one(self) -> CaseInput:
        given = [self.file is not None, self.messages is not None, self.message is not None]
        if sum(given) != 1:
            raise ValueError("input needs exactly one of 'file', 'messages' or 'message'")
        return self


class ExpectedDeadLetter(_Model):
    step: str | None = None
    reason: str | None = None
    """A fragment the dead-letter reason must contain."""
    input: int | None = Field(default=None, ge=0)
    """0-based index of the input message (in ``messages``) that must be dead-lettered."""


class CaseExpect(_Model):
    delivered: dict[str, list[Any]] | list[Any] | None = None
    """Per sink, the exact payloads in order; a list: what the partner accepted (with a
    ``partner:``) or what the flow's only sink received."""
    delivered_count: dict[str, int] | None = None
    dead_letters: list[ExpectedDeadLetter] | None = None
    filtered: int | None = None
    golden: bool | None = None
    """Compare all sink output with ``<case>.golden.json`` next to the case file."""
    retries: int | None = Field(default=None, ge=0)
    """Transient failures retried during the run."""
    partner_requests: int | None = Field(default=None, ge=0)
    """Requests the partner's resource paths received (token requests not counted)."""
    duplicates: int | None = Field(default=None, ge=0)
    """Messages the partner accepted more than once (by idempotency key, else by body)."""


DEFAULT_FAULTS: tuple[int | str, ...] = (500, 503, 429)
"""Random fault kinds of a case's partner when ``kinds`` is not given."""


class FaultSpec(_Model):
    """Random faults injected by the partner into a ratio of resource requests."""

    ratio: float = Field(ge=0.0, le=1.0)
    kinds: list[int | str] = Field(default_factory=lambda: list(DEFAULT_FAULTS))
    """Status codes, ``timeout``, ``reset`` or ``slow:<duration>``."""
    seed: int = 0
    """Seed of the fault schedule, so a case fails or passes the same way every run."""


class PartnerSpec(_Model):
    """A local fault-injecting partner that the flow's http sinks send to during the case."""

    script: dict[str, list[int | str]] = Field(default_factory=dict)
    """Per resource path, the next answers in order (then success)."""
    faults: FaultSpec | None = None
    env: dict[str, Literal["url", "token_url", "client_id", "client_secret"]] | None = None
    """Environment variables to point at the partner while the flow is loaded (default:
    found in the http sinks' ``url``, ``token_url``, ``client_id`` and ``client_secret``)."""
    paths: list[str] | None = None
    """Resource paths the partner serves (default: the paths of the http sinks' URLs)."""
    conflict_on_duplicate_key: str | None = None
    """Answer 409 to a body whose value of this key was accepted before."""

    @model_validator(mode="after")
    def _known_faults(self) -> PartnerSpec:
        from dovetail.testing.partner import _check_fault

        for answers in [*self.script.values(), self.faults.kinds if self.faults else []]:
            for answer in answers:
                _check_fault(answer)
        return self


class CaseFile(_Model):
    name: str | None = None
    input: CaseInput
    expect: CaseExpect = Field(default_factory=CaseExpect)
    partner: PartnerSpec | None = None


@dataclass
class FlowCase:
    """One loaded test case."""

    flow: str
    name: str
    path: Path
    spec: CaseFile
    messages: list[Any] = field(default_factory=list)

    @property
    def golden_path(self) -> Path:
        """``<case file stem>.golden.json`` next to the case file."""
        return self.path.with_name(f"{self.path.stem}.golden.json")


def load_case(path: Path, flow: str, shown: str) -> FlowCase:
    """Load one case file; raises ``ConfigError`` with positions."""
    located = load_yaml(path, shown)
    try:
        spec = CaseFile.model_validate(located.data)
    except ValidationError as exc:
        problems = [
            located.problem(tuple(e["loc"]), f"{'.'.join(map(str, e['loc']))}: {e['msg']}")
            for e in exc.errors(include_url=False)
        ]
        raise ConfigError(problems) from None
    if spec.input.file is not None and not (path.parent / spec.input.file).is_file():
        raise ConfigError([located.problem(("input", "file"), "input file not found")])
    return FlowCase(flow=flow, name=spec.name or path.stem, path=path, spec=spec)


def discover_cases(project_root: Path, flow: str) -> list[FlowCase]:
    """Cases under ``tests/<flow>/`` (``*.yaml``), sorted by file name."""
    folder = project_root / "tests" / flow
    cases: list[FlowCase] = []
    problems: list[Problem] = []
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        try:
            cases.append(load_case(path, flow, str(path.relative_to(project_root))))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return cases
