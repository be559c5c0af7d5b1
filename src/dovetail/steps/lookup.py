"""``lookup``: enrich each payload with a value from a CSV code table."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import anyio
from pydantic import Field, ValidationInfo, field_validator, model_validator

from dovetail.config.fields import JsonataExpr, ProjectFile, project_dir_of
from dovetail.core.component import BuildContext
from dovetail.core.envelope import Envelope
from dovetail.core.steps import MessageStep
from dovetail.errors import ConfigError, LookupMissing, PermanentError, Problem
from dovetail.mapping.jsonata import compile_expression
from dovetail.mapping.lookup_table import LookupTable, LookupTableError, load_table
from dovetail.mapping.transforms import to_text
from dovetail.plugins.spec import ComponentConfig, ComponentSpec

OnMissing = Literal["dead_letter", "null", "keep", "default"]
WHOLE_ROW = "*"
_TARGET = re.compile(r"^[^.\s]+(\.[^.\s]+)*$")


class LookupConfig(ComponentConfig):
    table: ProjectFile
    """CSV code table under the project (header row; ``lookups/status.csv``)."""

    key: JsonataExpr
    """JSONata path or expression over the payload giving the key to look up."""

    into: str
    """Dotted path in the payload the found value is written to (objects are created)."""

    column: str | None = None
    """Value column; default the first column after the key. ``"*"`` writes the whole row
    as an object."""

    key_column: str | None = None
    """Key column of the table; default its first column."""

    on_missing: OnMissing = "dead_letter"
    """When the key is not in the table (or the payload has no key): ``dead_letter`` the
    message, write ``null``, ``keep`` the payload as it is, or write ``default``."""

    default: Any = Field(default=None)
    """The value written when ``on_missing: default``."""

    @field_validator("on_missing", mode="before")
    @classmethod
    def _yaml_null(cls, value: object) -> object:
        return "null" if value is None else value  # YAML reads a bare `null` as None

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> LookupConfig:
        if not _TARGET.match(self.into):
            raise ValueError(f"into must be a dotted path like erp.status, not {self.into!r}")
        if self.on_missing == "default" and "default" not in self.model_fields_set:
            raise ValueError("on_missing: default needs a default value")
        if "default" in self.model_fields_set and self.on_missing != "default":
            raise ValueError("default is used only with on_missing: default")
        root = project_dir_of(info)
        if root is not None:
            try:
                open_table(root, self)
            except ConfigError as exc:
                raise ValueError(str(exc.problems[0])) from None
        return self


def open_table(project_dir: Path, config: LookupConfig) -> tuple[LookupTable, dict[str, Any]]:
    """Load (or reuse) the table and the ``key -> value`` dict the lookup reads.

    Raises ``ConfigError`` naming the table when it is missing, malformed or lacks a column.
    """
    try:
        table = load_table(
            project_dir / config.table, key_column=config.key_column, name=config.table
        )
        if config.column == WHOLE_ROW:
            return table, dict(table.rows)
        return table, dict(table.values(table.value_column(config.column)))
    except LookupTableError as exc:
        raise ConfigError([Problem(exc.path, exc.line, exc.col, exc.message)]) from None


class LookupStep(MessageStep):
    """Writes ``table[key]`` into ``into``; a missing key follows ``on_missing``.

    The table is read in ``open()`` (or on the first batch if not opened) and kept for the
    life of the flow; a new flow start or process reads it again if the file changed. The
    payload is not modified in place: the objects along ``into`` are copied.
    """

    name = "lookup"

    def __init__(self, config: LookupConfig, context: BuildContext) -> None:
        self._config = config
        self._project_dir = context.project_dir
        self._key = compile_expression(config.key)
        self._into = tuple(config.into.split("."))
        self._values: dict[str, Any] | None = None

    async def open(self) -> None:
        _, values = await anyio.to_thread.run_sync(open_table, self._project_dir, self._config)
        self._values = values

    async def close(self) -> None:
        self._values = None

    def _load(self) -> dict[str, Any]:
        if self._values is None:
            self._values = open_table(self._project_dir, self._config)[1]
        return self._values

    def apply(self, envelope: Envelope) -> Any:
        values = self._values if self._values is not None else self._load()
        payload = envelope.payload
        if not isinstance(payload, dict):
            raise PermanentError("lookup: the payload is not an object")
        raw = self._key.evaluate(payload)
        key = raw if isinstance(raw, str) else to_text(raw)
        if key is not None and not isinstance(raw, dict | list) and key in values:
            found = values[key]
            return _write(payload, self._into, dict(found) if isinstance(found, dict) else found)
        config = self._config
        if config.on_missing == "keep":
            return payload
        if config.on_missing == "null":
            return _write(payload, self._into, None)
        if config.on_missing == "default":
            return _write(payload, self._into, config.default)
        if key is None or isinstance(raw, dict | list):
            raise LookupMissing(f"lookup: field {config.key}: no key value for {config.table}")
        raise LookupMissing(
            f"lookup: field {config.key}: key not found in {config.table}",
            detail=f"key {key!r} not found in {config.table}",
        )


def _write(payload: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of ``payload`` with ``value`` at ``path`` (objects on the way copied or created)."""
    result = dict(payload)
    node = result
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = {}
        elif not isinstance(child, dict):
            raise PermanentError(
                f"lookup: cannot write into {'.'.join(path)}: {part} is not an object"
            )
        else:
            child = dict(child)
        node[part] = child
        node = child
    node[path[-1]] = value
    return result


SPEC = ComponentSpec(
    kind="step",
    name="lookup",
    config=LookupConfig,
    factory=LookupStep,
    summary="Enrich each payload with a value from a CSV code table (status codes, countries).",
    description=(
        "The table is a CSV file with a header row; its first column is the key (or"
        " `key_column`). `key` is a JSONata path or expression over the payload; numbers and"
        " booleans are looked up by their text (`1`, `true`). The value of `column` (default:"
        ' the first column after the key; `"*"`: the whole row as an object) is written at'
        " the dotted path `into`.\n\n"
        "A key that is not in the table follows `on_missing`: `dead_letter` (default; reason"
        " `lookup: key 'X' not found in lookups/status.csv`), `null`, `keep` (payload"
        " unchanged) or `default` (write `default`). Fix the table and `dovetail replay` the"
        " dead letters: the table is read once per flow start, so a new process sees the fix."
        " Cells are trimmed; a duplicate key in the table is a lint error."
    ),
    examples=[
        "lookup: {table: lookups/status.csv, key: status, into: erp_status}",
        "lookup:\n  table: lookups/countries.csv\n  key: customer.country\n"
        "  into: customer.country_name\n  column: name\n  on_missing: default\n"
        "  default: Unknown",
        'lookup: {table: lookups/products.csv, key: sku, into: product, column: "*",'
        " on_missing: null}",
    ],
)
