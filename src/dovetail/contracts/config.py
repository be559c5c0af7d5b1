"""``contract:`` of a sink: the partner's API operation or JSON Schema its output must meet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationInfo, model_validator

from dovetail.config.fields import ProjectFile, project_dir_of
from dovetail.plugins.spec import ComponentConfig


class ContractConfig(ComponentConfig):
    """What every message sent to the sink must satisfy.

    Written as a mapping (``{openapi: schemas/erp-openapi.yaml, operation: createSalesOrder}``
    or ``{json_schema: schemas/sales-order.schema.json}``) or as the shorthand
    ``schemas/erp-openapi.yaml#createSalesOrder``.
    """

    openapi: ProjectFile | None = None
    """The partner's OpenAPI 3 document (YAML or JSON) under the project."""
    operation: str | None = None
    """The `operationId` whose JSON request body the output must match."""
    json_schema: ProjectFile | None = None
    """A JSON Schema file (Draft 2020-12 unless it says otherwise) the output must match."""
    enforce: bool = False
    """Also check every message at run time, before it is sent: a violating message is
    dead-lettered with the violation as its reason. `dovetail test` always checks."""

    @model_validator(mode="after")
    def _one_kind(self, info: ValidationInfo) -> ContractConfig:
        if (self.openapi is None) == (self.json_schema is None):
            raise ValueError(
                "a contract names exactly one of openapi (with operation) or json_schema"
            )
        if self.openapi is not None and not self.operation:
            raise ValueError("an openapi contract needs `operation` (an operationId)")
        if self.json_schema is not None and self.operation is not None:
            raise ValueError("`operation` belongs to an openapi contract, not json_schema")
        project_dir = project_dir_of(info)
        if project_dir is not None:
            from dovetail.contracts.openapi import ContractError
            from dovetail.contracts.validate import ContractValidator

            try:
                ContractValidator(self, project_dir)
            except ContractError as exc:
                raise ValueError(str(exc)) from None
        return self

    @property
    def label(self) -> str:
        """``file#operation`` or the schema file, for messages."""
        if self.openapi is not None:
            return f"{self.openapi}#{self.operation}"
        return str(self.json_schema)

    def file(self, project_dir: Path) -> Path:
        """The contract file, resolved against the project."""
        name = self.openapi if self.openapi is not None else self.json_schema
        assert name is not None
        path = Path(name)
        return path if path.is_absolute() else project_dir / path


def _from_shorthand(value: Any) -> Any:
    if isinstance(value, str):
        file, hash_, operation = value.partition("#")
        if hash_:
            return {"openapi": file, "operation": operation}
        return {"json_schema": file}
    return value


Contract = Annotated[ContractConfig, BeforeValidator(_from_shorthand)]
"""A ``contract:`` field: a mapping, or ``file#operationId`` / ``schema.json`` shorthand."""
