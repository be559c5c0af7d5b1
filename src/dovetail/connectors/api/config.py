"""Configuration of the ``api`` source."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from dovetail.config.fields import JsonataExpr, ProjectFile, project_dir_of
from dovetail.config.types import Duration
from dovetail.connectors.api.contract import ContractError, read_security
from dovetail.connectors.api.credentials import auth_problems
from dovetail.connectors.http.server import ServerConfig
from dovetail.plugins.spec import ComponentConfig


class ApiResponseConfig(ComponentConfig):
    body: JsonataExpr | None = None
    """JSONata over the final payload (after every step) giving the response body; without
    it the final payload itself. `$message_id`, `$correlation_id` and `$request_id` are bound."""
    status: int = Field(default=200, ge=200, le=299)
    """Status code of a successful answer."""


class ApiConfig(ComponentConfig):
    openapi: ProjectFile
    """The OpenAPI 3 document (YAML or JSON) of the project that defines the operation."""
    operation: str
    """The `operationId` served; its path, method, parameters and request body are checked."""
    auth: dict[str, list[SecretStr]] = Field(default_factory=dict, validate_default=True)
    """The secrets each security scheme of the operation accepts, by the scheme's name in
    `components.securitySchemes`: API keys for an `apiKey` scheme (header, query or cookie),
    tokens for `http bearer`, `user:password` for `http basic`; use `${secret:NAME}`. List
    several to rotate a secret. Every scheme the operation's `security` names must be given
    one; other scheme types (OAuth2, OpenID Connect) cannot be served."""
    host: str = "127.0.0.1"
    """Interface to listen on; `0.0.0.0` to accept requests from other machines."""
    port: int = Field(default=0, ge=0, le=65535)
    """Port to listen on; 0 picks a free one."""
    base_path: str = ""
    """Prefix before the operation's path (`/v1`), when the API is served under one."""
    response: ApiResponseConfig = ApiResponseConfig()
    """How a settled message becomes the answer; it is checked against the operation's
    response schema for that status."""
    payload: Literal["body", "request"] = "body"
    """The message: the JSON body (`body`; for an operation without a body, its path and
    query parameters as one object), or `{"body", "path", "query"}` (`request`)."""
    timeout: Duration = 30.0
    """How long a caller waits for its message to settle before getting 504."""
    max_body_bytes: int = Field(default=1_048_576, ge=1)
    """Largest accepted body; larger requests get 413."""
    max_depth: int = Field(default=64, ge=1, le=512)
    """Deepest nesting accepted in a JSON body; deeper bodies get 400."""
    batch_size: int = Field(default=100, ge=1)
    """Most concurrent requests handed to the flow as one batch."""
    server: ServerConfig = ServerConfig()
    """Limits of the embedded HTTP server: connection cap, header, body and idle timeouts."""

    @field_validator("auth")
    @classmethod
    def _check_auth(
        cls, value: dict[str, list[SecretStr]], info: ValidationInfo
    ) -> dict[str, list[SecretStr]]:
        root = project_dir_of(info)
        if root is None or "openapi" not in info.data or "operation" not in info.data:
            return value
        spec_file = Path(info.data["openapi"])
        try:
            security = read_security(
                spec_file if spec_file.is_absolute() else root / spec_file, info.data["operation"]
            )
        except ContractError:
            return value  # the source names the problem when it starts
        plain = {name: [s.get_secret_value() for s in secrets] for name, secrets in value.items()}
        problems = auth_problems(security, plain, info.data["operation"])
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("base_path")
    @classmethod
    def _check_base_path(cls, value: str) -> str:
        if value and (not value.startswith("/") or value.endswith("/")):
            raise ValueError(f"base_path must start with '/' and not end with one: {value!r}")
        return value
