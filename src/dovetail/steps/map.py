"""``map``: reshape each payload with a JSONata expression or a mapping sheet."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationInfo, field_validator, model_validator

from dovetail.config.fields import ProjectFile, project_dir_of
from dovetail.core.component import BuildContext
from dovetail.core.envelope import Envelope
from dovetail.core.steps import MessageStep
from dovetail.errors import ConfigError, MappingFailed, Problem
from dovetail.mapping.jsonata import JsonataSyntaxError, compile_expression
from dovetail.mapping.sheet import compile_sheet, load_sheet
from dovetail.plugins.spec import ComponentConfig, ComponentSpec

Mapping = Callable[[Any], Any]
JSONATA_SUFFIX = ".jsonata"


class MapConfig(ComponentConfig):
    jsonata: str | None = None
    """A JSONata expression, inline, or the path of a ``.jsonata`` file under the project
    (a value ending in ``.jsonata`` is always a file)."""

    sheet: ProjectFile | None = None
    """A mapping sheet (``.csv``, ``.yaml`` or ``.yml``) under the project."""

    @model_validator(mode="after")
    def _exactly_one(self) -> MapConfig:
        if (self.jsonata is None) == (self.sheet is None):
            raise ValueError("give exactly one of jsonata (expression or file) or sheet")
        return self

    @field_validator("jsonata")
    @classmethod
    def _jsonata_compiles(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            try:
                load_mapping(project_dir_of(info), jsonata=value, sheet=None)
            except ConfigError as exc:
                raise ValueError(_located(exc)) from None
        return value

    @field_validator("sheet")
    @classmethod
    def _sheet_compiles(cls, value: str | None, info: ValidationInfo) -> str | None:
        project_dir = project_dir_of(info)
        if value is not None and project_dir is not None:
            try:
                load_mapping(project_dir, jsonata=None, sheet=value)
            except ConfigError as exc:
                raise ValueError(_located(exc)) from None
        return value


def _located(error: ConfigError) -> str:
    return "\n".join(str(problem) for problem in error.problems)


def is_jsonata_file(value: str) -> bool:
    """Whether a ``jsonata:`` value names a file (it ends in ``.jsonata``) or is inline."""
    return value.strip().endswith(JSONATA_SUFFIX)


def load_mapping(project_dir: Path | None, *, jsonata: str | None, sheet: str | None) -> Mapping:
    """Compile the mapping once. Without ``project_dir`` only inline JSONata can be checked.

    Raises ``ConfigError`` (``SheetError`` for sheets) with ``file:line:col`` positions.
    """
    if sheet is not None:
        if project_dir is None:
            raise ConfigError([Problem(sheet, 1, 1, "a sheet needs the project directory")])
        return compile_sheet(load_sheet(project_dir / sheet, name=sheet), project_dir)
    assert jsonata is not None
    source, name = jsonata, "<inline>"
    if is_jsonata_file(jsonata):
        name = jsonata.strip()
        if project_dir is None:
            return _unavailable
        path = project_dir / name
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise ConfigError([Problem(name, 1, 1, "file not found or not UTF-8 text")]) from None
    try:
        expression = compile_expression(source)
    except JsonataSyntaxError as exc:
        line, col = _line_col(source, exc.position)
        raise ConfigError([Problem(name, line, col, str(exc))]) from None
    evaluate = expression.evaluate

    def run_jsonata(payload: Any) -> Any:
        result = evaluate(payload)
        if result is None:
            raise MappingFailed(f"map: {name} gave no result (undefined or null)")
        return result

    return run_jsonata


def _unavailable(payload: Any) -> Any:
    raise RuntimeError("the mapping was not loaded with a project directory")


def _line_col(text: str, position: int | None) -> tuple[int, int]:
    if position is None:
        return 1, 1
    before = text[: max(position - 1, 0)]
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


class MapStep(MessageStep):
    """Replaces each payload with the mapping's result; a mapping error fails the message.

    The mapping is compiled once, in ``open()`` (or on the first batch if not opened).
    Failures are ``MappingFailed`` (dead-lettered with the reason).
    """

    name = "map"

    def __init__(self, config: MapConfig, context: BuildContext) -> None:
        self._config = config
        self._project_dir = context.project_dir
        self._mapping: Mapping | None = None

    async def open(self) -> None:
        self._load()

    async def close(self) -> None:
        self._mapping = None

    def _load(self) -> Mapping:
        if self._mapping is None:
            config = self._config
            self._mapping = load_mapping(
                self._project_dir, jsonata=config.jsonata, sheet=config.sheet
            )
        return self._mapping

    def apply(self, envelope: Envelope) -> Any:
        return (self._mapping or self._load())(envelope.payload)


SPEC = ComponentSpec(
    kind="step",
    name="map",
    config=MapConfig,
    factory=MapStep,
    summary="Reshape each payload with JSONata or an executable mapping sheet.",
    description=(
        "Give exactly one of `jsonata` or `sheet`; either is compiled once at flow start and"
        " checked by `dovetail lint`, errors reported as `file:line:col`.\n\n"
        "`jsonata` is an inline expression, or the path of a `.jsonata` file under the"
        " project (a value ending in `.jsonata` is always read as a file). Its result replaces"
        " the payload; no result (undefined or null) fails the message.\n\n"
        "`sheet` is a source-to-target table (CSV with a header row, or YAML), one row per"
        " target field, with the columns `target, source, transform, required, note`:\n\n"
        "- `target`: dotted output path (`customer.name`); nested objects are created, and"
        " every target is written (`null` when there is no value).\n"
        '- `source`: a dotted input path; or a constant, `=EUR` (also `="EUR"`) or a JSONata'
        " literal (`'EUR'`, `42`); or any other JSONata expression (`$sum(lines.amount)`); or"
        " empty when the transform supplies the value (`default:EUR`). With `concat`, several"
        " sources separated by commas.\n"
        "- `transform`: a `|` chain of `upper`, `lower`, `trim`, `string`, `int`, `number`,"
        ' `decimal:N` (rounded half-up, returned as text such as `"12.50"` so no digit is'
        " lost; add `|number` for a JSON number), `bool`, `date:FORMAT` (reads ISO-8601,"
        " RFC 2822, `31.12.2024`, `2024/12/31`, `31 Dec 2024`; writes strftime FORMAT or"
        " `iso`), `date:IN>OUT` (explicit input format, e.g. `%m/%d/%Y>%Y-%m-%d`),"
        " `default:X` (when missing or empty), `lookup:TABLE[.COLUMN]` (`lookups/TABLE.csv`,"
        " first column is the key; no match gives null), `concat:SEP` (joins the non-empty"
        " parts; default separator a space), `map:A=x;B=y;*=other` (inline code mapping; no"
        " match and no `*` gives null), `prefix:X`, `suffix:X`, `truncate:N`. Quote an"
        " argument to keep blanks: `prefix:'Mr. '`.\n"
        "- `required`: yes/no (also y/n, true/false). A required target that ends up null or"
        " empty fails the message: `required field <target> is empty (source <source>)`.\n"
        "- `note`: free text, shown in the generated interface docs.\n\n"
        "A transform that cannot convert a value fails the message with a reason naming the"
        " field and the transform, never the value."
    ),
    examples=[
        "map: {sheet: mappings/order-to-salesorder.csv}",
        "map: {jsonata: mappings/order.jsonata}",
        'map:\n  jsonata: |\n    {"orderId": order_id, "total": $sum(lines.amount)}',
    ],
)
