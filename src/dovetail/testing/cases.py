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
        - {step: lookup, reason: "not found"}
      filtered: 0

Sinks are captured (nothing is sent anywhere); a fresh store is used per case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


class CaseExpect(_Model):
    delivered: dict[str, list[Any]] | None = None
    delivered_count: dict[str, int] | None = None
    dead_letters: list[ExpectedDeadLetter] | None = None
    filtered: int | None = None


class CaseFile(_Model):
    name: str | None = None
    input: CaseInput
    expect: CaseExpect = Field(default_factory=CaseExpect)


@dataclass
class FlowCase:
    """One loaded test case."""

    flow: str
    name: str
    path: Path
    spec: CaseFile
    messages: list[Any] = field(default_factory=list)


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
