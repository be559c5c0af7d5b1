"""``validate``: check each payload against a JSON Schema (Draft 2020-12) or an XSD."""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote, urlparse

import orjson
from pydantic import Field, ValidationInfo, field_validator

from dovetail.config.fields import ProjectFile, project_dir_of
from dovetail.core.component import BuildContext, StepOutcome
from dovetail.core.envelope import Envelope
from dovetail.core.steps import MessageStep, mark_failed
from dovetail.errors import ConfigError, PayloadRejected, Problem, ValidationFailed
from dovetail.plugins.spec import ComponentConfig, ComponentSpec
from dovetail.safety.paths import is_inside

Check = Callable[[Any], None]
"""Raises ``ValidationFailed`` (or ``PayloadRejected``) when a payload does not conform."""


class ValidateConfig(ComponentConfig):
    schema_file: ProjectFile = Field(alias="schema")
    """Schema file under the project: ``.json`` (JSON Schema; Draft 2020-12 unless its
    ``$schema`` names another draft) or ``.xsd`` (XML Schema, for XML text payloads)."""

    max_errors: int = Field(default=3, ge=1, le=20)
    """How many violations the dead-letter reason lists."""

    @field_validator("schema_file")
    @classmethod
    def _schema_loads(cls, value: str, info: ValidationInfo) -> str:
        if Path(value).suffix.lower() not in (".json", ".xsd"):
            raise ValueError("schema must be a .json (JSON Schema) or .xsd (XML Schema) file")
        root = project_dir_of(info)
        if root is not None:
            try:
                load_schema(root, value, max_errors=1)
            except ConfigError as exc:
                raise ValueError(exc.problems[0].message) from None
        return value


def load_schema(project_dir: Path, name: str, *, max_errors: int = 3) -> Check:
    """Compile the schema ``name`` (relative to ``project_dir``) once into a check function.

    Raises ``ConfigError`` when the file cannot be read or is not a valid schema.
    """
    path = project_dir / name
    try:
        if path.suffix.lower() == ".xsd":
            return _xsd_check(path, project_dir, max_errors)
        return _json_schema_check(path, project_dir, max_errors)
    except (OSError, ValueError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError([Problem(name, 1, 1, f"invalid schema: {message}")]) from None


def _json_schema_check(path: Path, project_dir: Path, max_errors: int) -> Check:
    import jsonschema_rs

    schema = orjson.loads(path.read_bytes())

    def retrieve(uri: str) -> Any:
        """Resolve ``$ref`` to local files inside the project only: no network, no escape."""
        parsed = urlparse(uri)
        target = Path(unquote(parsed.path))
        if parsed.scheme != "file" or not is_inside(target, project_dir):
            raise ValueError(f"$ref {uri} is not a file inside the project")
        return orjson.loads(target.read_bytes())

    validator = jsonschema_rs.validator_for(
        schema, base_uri=path.resolve().as_uri(), retriever=retrieve, mask="value"
    )

    is_valid = validator.is_valid

    def check(payload: Any) -> None:
        if is_valid(payload):
            return
        errors = list(islice(validator.iter_errors(payload), max_errors + 1))
        shown = [
            f"schema violation at {_pointer(error.instance_path)}: {_json_message(error)}"
            for error in errors[:max_errors]
        ]
        more = " (and more)" if len(errors) > max_errors else ""
        raise ValidationFailed("; ".join(shown) + more)

    _CONFORMS[check] = is_valid
    return check


_NAMES_FROM_PAYLOAD = {
    "AdditionalProperties": "properties not declared in the schema are not allowed",
    "UnevaluatedProperties": "properties not declared in the schema are not allowed",
    "PropertyNames": "a property name breaks the schema's propertyNames rule",
}
"""Violations whose message quotes the payload's own property names (``mask`` hides only
values): their reason says what is wrong without the names."""


def _json_message(error: Any) -> str:
    return str(_NAMES_FROM_PAYLOAD.get(type(error.kind).__name__, error.message))


def _not_well_formed(error: Exception) -> str:
    """The reason for an XML parse error; the parser's message quotes the payload."""
    text = str(error).lower()
    if "amplification" in text or "entity reference loop" in text:
        return "payload is not well-formed XML: entity amplification refused"
    return "payload is not well-formed XML"


_CONFORMS: weakref.WeakKeyDictionary[Check, Callable[[Any], bool]] = weakref.WeakKeyDictionary()
"""Per JSON Schema check, the validator's own yes/no test: a batch is checked with it, and
only the payloads it refuses go through ``check`` for their reasons."""


def _pointer(parts: list[str | int]) -> str:
    escaped = (str(p).replace("~", "~0").replace("/", "~1") for p in parts)
    return "/" + "/".join(escaped)


_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_ELEMENT_PREFIX = re.compile(r"^Element '[^']*': ")
_FACET_VALUE = re.compile(r"The value '[^']*'")
_TYPE_VALUE = re.compile(r"(^|: )'[^']*'(?= is not a valid value)")


def _xsd_check(path: Path, project_dir: Path, max_errors: int) -> Check:
    from lxml import etree

    class _ProjectOnly(etree.Resolver):
        """``xs:include``/``xs:import`` may only load files inside the project: no network."""

        def resolve(self, system_url: str, public_id: str, context: object = None) -> Any:
            target = Path(unquote(urlparse(system_url or "").path))
            if not target.is_absolute():
                target = path.parent / target
            if not is_inside(target, project_dir):
                raise etree.XMLSchemaParseError(
                    f"{system_url} is not a file inside the project; schemas may only include"
                    " files of the project"
                )
            return None

    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    parser.resolvers.add(_ProjectOnly())
    try:
        schema = etree.XMLSchema(etree.parse(str(path), parser))
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
        raise ValueError(str(exc)) from None

    def check(payload: Any) -> None:
        if isinstance(payload, str):
            data: str | bytes = _XML_DECLARATION.sub("", payload, count=1)
        elif isinstance(payload, bytes):
            data = payload
        else:
            raise ValidationFailed(
                f"schema {path.name} is an XSD, which checks XML text, but the payload is"
                f" {_kind(payload)}; validate before converting XML, or use a JSON Schema"
            )
        try:
            document = etree.fromstring(data, parser)
        except etree.XMLSyntaxError as exc:
            raise PayloadRejected(
                _not_well_formed(exc), detail=f"not well-formed XML: {exc}"
            ) from None
        entity = next(document.iter(etree.Entity), None)
        if entity is not None:
            raise PayloadRejected(
                f"payload refers to the entity {entity.text}, which is not expanded"
                " (XML entities are disabled)"
            )
        try:
            if schema.validate(document):
                return
        except etree.XMLSchemaValidateError as exc:
            raise PayloadRejected(
                "XML cannot be validated", detail=f"XML cannot be validated: {exc}"
            ) from None
        errors = list(cast(Iterable[Any], schema.error_log))  # the lxml stubs lack __iter__
        shown = [
            f"schema violation at {error.path or '/'}: {_mask_xsd_message(error.message)}"
            for error in errors[:max_errors]
        ]
        more = f" (and {len(errors) - max_errors} more)" if len(errors) > max_errors else ""
        raise ValidationFailed("; ".join(shown) + more)

    return check


def _mask_xsd_message(message: str) -> str:
    """Drop the element's value from libxml2's message (it may be personal data)."""
    message = _FACET_VALUE.sub("The value", _ELEMENT_PREFIX.sub("", message))
    return _TYPE_VALUE.sub(r"\1value", message)


def _kind(payload: Any) -> str:
    if isinstance(payload, dict | list):
        return "an object (parsed data)" if isinstance(payload, dict) else "an array (parsed data)"
    return f"a {type(payload).__name__}"


class ValidateStep(MessageStep):
    """Passes conforming payloads unchanged; a violation fails the message (dead-lettered).

    The schema is compiled once, in ``open()`` (or on the first batch if not opened).
    """

    name = "validate"

    def __init__(self, config: ValidateConfig, context: BuildContext) -> None:
        self._config = config
        self._project_dir = context.project_dir
        self._check: Check | None = None

    async def open(self) -> None:
        self._load()

    async def close(self) -> None:
        self._check = None

    def _load(self) -> Check:
        if self._check is None:
            self._check = load_schema(
                self._project_dir, self._config.schema_file, max_errors=self._config.max_errors
            )
        return self._check

    def apply(self, envelope: Envelope) -> Any:
        check = self._check or self._load()
        check(envelope.payload)
        return envelope.payload

    async def process(self, batch: Sequence[Envelope]) -> StepOutcome:
        """Check the whole batch with the validator's yes/no test; only the payloads it
        refuses are checked again for their reasons (and fail with them)."""
        check = self._check or self._load()
        conforms = _CONFORMS.get(check)
        if conforms is None:  # XSD: per message
            return await super().process(batch)
        outcome = StepOutcome()
        passed = outcome.passed
        for envelope in batch:
            if conforms(envelope.payload):
                passed.append(envelope)
                continue
            try:
                check(envelope.payload)
            except Exception as exc:  # a bad message becomes data, never unwinds the batch
                mark_failed(envelope, self.name, exc)
                outcome.failed.append(envelope)
            else:
                passed.append(envelope)
        return outcome


SPEC = ComponentSpec(
    kind="step",
    name="validate",
    config=ValidateConfig,
    factory=ValidateStep,
    summary="Check each payload against a JSON Schema or an XSD; dead-letter what fails.",
    description=(
        "A `.json` schema is JSON Schema (Draft 2020-12 unless its `$schema` says otherwise),"
        " compiled once at flow start; `$ref` may point to other files inside the project,"
        " never to the network. A `.xsd` schema validates XML text payloads (a `str` or"
        " `bytes` payload, e.g. from an XML webhook); XML entities, DTDs and network access"
        " are disabled. A payload that does not conform is dead-lettered with a reason such as"
        ' `schema violation at /customer/email: value is not a "email"`, listing the first'
        " `max_errors` violations; values themselves are masked in the reason, because they"
        " may be personal data. An XSD cannot check a payload that was already parsed into"
        " an object: validate before any conversion. A bare string is the schema path:"
        " `validate: schemas/order.schema.json`."
    ),
    examples=[
        "validate: {schema: schemas/order.schema.json}",
        "validate: schemas/order.schema.json",
        "validate: {schema: schemas/invoice.xsd, max_errors: 5}",
    ],
    shorthand="schema",
)
