"""The reconciliation file (``reconcile/<name>.yaml``): its model and its loader.

A reconciliation names a source and a target (CSV, JSON, JSON Lines, SQL query or REST
collection), the key that pairs their records, and how fields are compared. Problems are
reported together as ``path:line:col: message``, like flow files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from dovetail.config.fields import JsonataExpr, ProjectFile, holds_reference
from dovetail.config.interpolate import Resolver, interpolate
from dovetail.config.loader import Project, _problems_from, load_project
from dovetail.config.yaml_positions import Located, load_yaml
from dovetail.connectors.http.auth import AuthConfig
from dovetail.connectors.sql.engine import backend_of
from dovetail.errors import ConfigError

Normalizer = Literal[
    "strip", "lower", "upper", "collapse_whitespace", "blank_as_null", "number", "no_leading_zeros"
]
"""Named value normalisations, applied in the order listed."""

FILE_FORMATS: dict[str, Literal["csv", "json", "jsonl"]] = {
    ".csv": "csv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


class ReconcileModel(BaseModel):
    """Base of the reconciliation models: unknown keys are errors; docstrings are docs."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


def _path_shorthand(value: Any) -> Any:
    return {"path": value} if isinstance(value, str) else value


class FileInput(ReconcileModel):
    """A CSV, JSON or JSON Lines file, relative to the project directory."""

    path: ProjectFile
    """The file, relative to the project directory (or absolute)."""
    encoding: str = "utf-8"
    """Text encoding of the file."""
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    """CSV field delimiter."""


class SqlInput(ReconcileModel):
    """Rows of a SQL query, streamed with a server-side cursor."""

    url: str
    """Database URL: `postgresql://user@host/db` or `sqlite:///orders.db` (project-relative)."""
    query: str = Field(min_length=1)
    """The SELECT whose rows are compared; column names are field names."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Bind parameters for `:name` placeholders in the query."""
    batch_size: int = Field(default=5000, ge=1, le=100_000)
    """Rows fetched per round trip."""
    timeout: float = Field(default=60.0, gt=0)
    """Seconds to wait for the connection and for each fetch."""

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if not holds_reference(value):
            backend_of(value)  # raises ValueError naming the supported schemes
        return value


class RestInput(ReconcileModel):
    """A REST collection read with GET, page by page."""

    url: str = Field(pattern=r"^(https?://|\$\{)")
    """URL of the first page."""
    items: JsonataExpr | None = None
    """JSONata path to the records in a page (`data.orders`); unset: the page is the array."""
    next: JsonataExpr | None = None
    """JSONata path to the next page: a link (absolute or relative URL) or, with `cursor_param`,
    a cursor. Unset, empty or null: this was the last page."""
    cursor_param: str | None = None
    """Query parameter that carries the cursor from `next` to the following request."""
    params: dict[str, str] = Field(default_factory=dict)
    """Query parameters of the first request."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Request headers."""
    auth: AuthConfig | None = None
    """Authentication, as for the `http` sink."""
    timeout: float = Field(default=30.0, gt=0)
    """Seconds per request."""
    max_pages: int = Field(default=100_000, ge=1)
    """Stop with an error after this many pages (a loop in the partner's paging)."""


class SideConfig(ReconcileModel):
    """Where one side's records come from: exactly one of `csv`, `json`, `jsonl`, `sql`, `rest`."""

    csv: FileInput | None = None
    """A CSV file with a header line (`csv: exports/orders.csv`)."""
    json_file: FileInput | None = Field(default=None, alias="json")
    """A JSON file: an array of objects (read whole) or, for `.jsonl`/`.ndjson`, JSON Lines."""
    jsonl: FileInput | None = None
    """A JSON Lines file: one object per line, streamed."""
    sql: SqlInput | None = None
    """A SQL query (SQLite or PostgreSQL)."""
    rest: RestInput | None = None
    """A paginated REST collection."""

    @field_validator("csv", "json_file", "jsonl", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return _path_shorthand(value)

    @model_validator(mode="after")
    def _exactly_one(self) -> SideConfig:
        chosen = self.kinds()
        if len(chosen) != 1:
            found = ", ".join(chosen) or "none"
            raise ValueError(f"needs exactly one of csv, json, jsonl, sql, rest; found {found}")
        return self

    def kinds(self) -> list[str]:
        """The input kinds set (exactly one once validated)."""
        return [
            info.alias or name
            for name, info in type(self).model_fields.items()
            if getattr(self, name) is not None
        ]

    @property
    def kind(self) -> str:
        """``csv``, ``json``, ``jsonl``, ``sql`` or ``rest``."""
        return self.kinds()[0]

    def label(self) -> str:
        """A short description for reports: ``csv exports/orders.csv``, ``sql sqlite:///...``."""
        if self.sql is not None:
            return f"sql {self.sql.url}"
        if self.rest is not None:
            return f"rest {self.rest.url}"
        return f"{self.kind} {self.file().path}"

    def file(self) -> FileInput:
        """The file of a ``csv``, ``json`` or ``jsonl`` side."""
        file = self.csv or self.json_file or self.jsonl
        if file is None:
            raise ValueError(f"a {self.kind} side has no file")
        return file


class FieldRule(ReconcileModel):
    """How one field is compared."""

    tolerance: float | None = Field(default=None, ge=0)
    """Numbers within this absolute difference are equal (`0.01`)."""
    normalize: list[Normalizer] = Field(default_factory=list)
    """Normalisations applied to both sides before comparing, in order: `strip`, `lower`,
    `upper`, `collapse_whitespace`, `blank_as_null`, `number` (`"12.50"` -> `12.5`),
    `no_leading_zeros`."""
    map: dict[str, Any] = Field(default_factory=dict)
    """Translate source values to the target's vocabulary before comparing (`{N: new}`)."""
    target_field: str | None = None
    """The field's name in the target when it differs (`total_amount`)."""

    @field_validator("normalize", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class ReconcileConfig(ReconcileModel):
    """One reconciliation: compare `source` with `target` record by record, by `key`."""

    name: str | None = None
    """Shown in reports; defaults to the file name."""
    description: str | None = None
    """What is reconciled and why (shown in reports)."""
    source: SideConfig
    """The system of record: accuracy is measured against its records."""
    target: SideConfig
    """The system that should hold the same records."""
    key: list[str] = Field(min_length=1)
    """Field(s) that identify a record on both sides."""
    fields: dict[str, FieldRule] = Field(default_factory=dict)
    """Comparison rules per field (by source field name)."""
    compare: Literal["all", "listed"] = "all"
    """`all`: every field of either side except the key and `ignore`; `listed`: only `fields`."""
    ignore: list[str] = Field(default_factory=list)
    """Fields never compared (timestamps, surrogate ids)."""
    blank_is_null: bool = True
    """Treat an empty string and a missing or null value as equal."""
    threshold: float = Field(default=100.0, ge=0, le=100)
    """Minimum accuracy in percent; below it the reconciliation fails (exit code 3)."""
    examples: int = Field(default=20, ge=0, le=10_000)
    """Example rows listed per category in reports (counts are always exact)."""
    mask: list[str] = Field(default_factory=list)
    """Fields whose values are shown masked in reports."""
    _origin: Located | None = PrivateAttr(default=None)

    @property
    def origin(self) -> Located | None:
        """The file this reconciliation was loaded from, with positions (None: flags or code)."""
        return self._origin

    def located_in(self, origin: Located | None) -> ReconcileConfig:
        """This reconciliation, its problems located in ``origin`` (returns ``self``)."""
        self._origin = origin
        return self

    def rules(self) -> dict[str, Any]:
        """The rules used, as recorded in reports: key, compare, fields, ignore, threshold."""
        return {
            "key": list(self.key),
            "compare": self.compare,
            "fields": {
                name: rule.model_dump(exclude_defaults=True)
                for name, rule in sorted(self.fields.items())
            },
            "ignore": list(self.ignore),
            "mask": list(self.mask),
            "blank_is_null": self.blank_is_null,
            "threshold": self.threshold,
        }

    @field_validator("key", "ignore", "mask", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> ReconcileConfig:
        clash = sorted(set(self.key) & set(self.ignore))
        if clash:
            raise ValueError(f"key field(s) {clash} cannot also be ignored")
        for name in self.key:
            rule = self.fields.get(name)
            if rule is not None and rule.tolerance is not None:
                raise ValueError(f"key field {name!r} cannot have a tolerance")
        if len(set(self.key)) != len(self.key):
            raise ValueError("key lists a field twice")
        return self

    def rule(self, name: str) -> FieldRule:
        """The rule for a field (the default rule when none is declared)."""
        return self.fields.get(name) or _DEFAULT_RULE


_DEFAULT_RULE = FieldRule()


def file_format(side: SideConfig) -> Literal["csv", "json", "jsonl"]:
    """The reader format of a file side (``json:`` with a ``.jsonl`` name reads JSON Lines)."""
    if side.csv is not None:
        return "csv"
    if side.jsonl is not None:
        return "jsonl"
    return "jsonl" if Path(side.file().path).suffix.lower() in {".jsonl", ".ndjson"} else "json"


def load_reconciliation(
    path: Path | str, project: Project | None = None, *, strict: bool = True
) -> ReconcileConfig:
    """Load and validate a reconciliation file; raises ``ConfigError`` listing every problem.

    Relative file paths and SQLite URLs are read from the project directory. ``strict``
    resolves ``${env:}``/``${secret:}`` references (run); lenient mode keeps unresolved ones
    (lint).
    """
    path = Path(path)
    project = project or load_project(path)
    located = load_yaml(path, project.display(path))
    if not isinstance(located.data, dict):
        raise ConfigError([located.problem((), "a reconciliation file must be a mapping")])
    resolver = Resolver(
        secret_dirs=[project.root / d for d in project.settings.secrets.files], strict=strict
    )
    data, missing = interpolate(located.data, resolver)
    problems = [located.problem(loc, message) for loc, message in missing]
    data.setdefault("name", path.stem)
    try:
        config = ReconcileConfig.model_validate(data, context={"project_dir": project.root})
    except ValidationError as exc:
        problems.extend(_problems_from(exc, located, (), ReconcileConfig))
        config = None
    if problems or config is None:
        raise ConfigError(sorted(set(problems), key=lambda p: (p.line, p.col, p.message)))
    return config.located_in(located)


def validate_reconciliation(data: dict[str, Any], project_dir: Path) -> ReconcileConfig:
    """Validate a reconciliation built in code or from command-line flags.

    Raises ``ConfigError`` with one problem per validation error (located at ``<options>``).
    """
    try:
        return ReconcileConfig.model_validate(data, context={"project_dir": project_dir})
    except ValidationError as exc:
        from dovetail.errors import Problem

        problems = [
            Problem(
                "<options>",
                1,
                1,
                f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}".removeprefix(": "),
            )
            for error in exc.errors(include_url=False)
        ]
        raise ConfigError(problems) from None
