"""The OpenAPI 3 operation an ``api`` source serves, and its request/response checks.

This is the one module that imports ``openapi_core`` (the ``api`` extra), lazily. The spec
is reduced to the chosen operation's path and served relative to ``/``, so a request is
checked against exactly that operation, whatever ``servers`` the file declares. Each
violation becomes a ``Violation`` (where, what) for the RFC 9457 ``errors`` list.

The operation's ``security`` is read here (``OperationSecurity``) but taken out of what
openapi-core sees: it only checks that credentials are present, while ``credentials.py``
checks their values against the configured secrets.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from dovetail.errors import DovetailError, MissingExtraError

log = structlog.get_logger(__name__)

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class ContractError(DovetailError):
    """The OpenAPI file cannot be read, is invalid, or lacks the named operation."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One way a request or response breaks the contract.

    ``location`` is ``body``, ``path``, ``query``, ``header``, ``cookie``, ``request`` (the
    request could not be checked at all) or ``response``; ``pointer`` a JSON Pointer into the
    body (``/items/0/qty``) or the parameter name.
    """

    location: str
    detail: str
    pointer: str | None = None

    def as_dict(self) -> dict[str, str]:
        """The problem+json form: ``{"in", "pointer"?, "detail"}``."""
        item = {"in": self.location, "detail": self.detail}
        if self.pointer is not None:
            item["pointer"] = self.pointer
        return item


@dataclass(frozen=True, slots=True)
class CheckedRequest:
    """The outcome of checking a request: its typed parameters or its violations."""

    violations: list[Violation]
    path: dict[str, Any]
    query: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SecurityScheme:
    """One ``components.securitySchemes`` entry an operation names.

    ``kind`` is ``api_key``, ``bearer`` or ``basic`` for the schemes the ``api`` source checks,
    ``None`` for any other (OAuth2, OpenID Connect, mutual TLS, other HTTP schemes).
    """

    name: str
    kind: str | None
    description: str
    location: str = ""
    """Where an API key travels: ``header``, ``query`` or ``cookie``."""
    parameter: str = ""
    """The header, query parameter or cookie that carries an API key."""


@dataclass(frozen=True, slots=True)
class OperationSecurity:
    """What an operation's ``security`` asks for: any one requirement, each needing all of
    its schemes (an empty requirement lets anonymous callers in)."""

    requirements: tuple[tuple[str, ...], ...]
    schemes: dict[str, SecurityScheme]

    @property
    def required(self) -> bool:
        """True unless the operation lets every caller in."""
        return bool(self.requirements) and all(self.requirements)


class RequestView:
    """What openapi-core reads from an incoming request (its ``Request`` protocol)."""

    def __init__(
        self,
        *,
        method: str,
        path: str,
        query: Mapping[str, Any],
        headers: Mapping[str, Any],
        cookies: Mapping[str, Any],
        body: bytes | None,
        content_type: str,
    ) -> None:
        from openapi_core.datatypes import RequestParameters

        self.host_url = "http://dovetail.invalid"
        self.path = path
        self.method = method.lower()
        self.parameters = RequestParameters(query=query, header=headers, cookie=cookies)
        self.body = body
        self.content_type = content_type or "application/octet-stream"


class ResponseView:
    """What openapi-core reads from an outgoing response (its ``Response`` protocol)."""

    def __init__(
        self,
        status_code: int,
        data: bytes | None,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        from starlette.datastructures import Headers

        self.status_code = status_code
        self.data = data
        self.content_type = content_type
        self.headers = Headers({**(headers or {}), "content-type": content_type})
        """Every header the answer carries, looked up case-insensitively."""


class OperationContract:
    """One OpenAPI operation: where it is served and how requests and responses are checked."""

    def __init__(self, spec_file: Path, operation_id: str) -> None:
        try:
            from openapi_core import OpenAPI
        except ImportError:
            raise MissingExtraError(
                "the api source needs openapi-core: pip install 'dovetail[api]'"
            ) from None
        document = _load(spec_file)
        path, method, reduced = _reduce(document, operation_id, spec_file)
        self.security = _security(document, operation_id, spec_file)
        """The operation's security requirements and schemes, checked by ``CredentialCheck``."""
        self.path_template = path
        """The operation's path as the spec writes it (``/orders/{order_id}``)."""
        self.method = method.upper()
        self.has_body = "requestBody" in reduced["paths"][path][method]
        try:
            self._openapi = OpenAPI.from_dict(reduced, base_uri=spec_file.resolve().as_uri())
        except Exception as exc:  # openapi-spec-validator's many error types
            raise ContractError(
                f"{spec_file.name} is not a valid OpenAPI 3 document: {exc}"
            ) from None

    def check_request(self, request: RequestView) -> CheckedRequest:
        """Validate ``request``; typed path and query parameters when it is valid.

        Never raises: whatever openapi-core raises on a request (a value it cannot cast, a
        document it cannot walk) becomes one violation, so the caller answers 400.
        """
        try:
            result = self._openapi.unmarshal_request(request)
        except Exception as exc:  # openapi-core's error types are many and unstable
            log.warning("api request could not be checked", error=type(exc).__name__)
            detail = "the request could not be checked against the operation"
            return CheckedRequest(violations=[Violation("request", detail)], path={}, query={})
        violations = [v for error in result.errors for v in _violations(error, "request")]
        parameters = result.parameters
        path = _plain(dict(parameters.path)) if parameters else {}
        query = _plain(dict(parameters.query)) if parameters else {}
        # openapi-core casts "nan", "inf" and "1e999" to floats; JSON has no such numbers
        for where, values in (("path", path), ("query", query)):
            for name, value in values.items():
                items = value if isinstance(value, list) else [value]
                if any(isinstance(v, float) and not math.isfinite(v) for v in items):
                    detail = f"{name}: {value!r} is not a finite number"
                    violations.append(Violation(where, detail, name))
        return CheckedRequest(violations=violations, path=path, query=query)

    def check_response(self, request: RequestView, response: ResponseView) -> list[Violation]:
        """Violations of the operation's response schema by ``response`` (empty: it conforms)."""
        try:
            result = self._openapi.unmarshal_response(request, response)
        except Exception as exc:  # as in check_request: a violation, never a traceback
            return [Violation("response", f"the response could not be checked: {exc}")]
        return [v for error in result.errors for v in _violations(error, "response")]


def read_security(spec_file: Path, operation_id: str) -> OperationSecurity:
    """The security ``operation_id`` declares in ``spec_file`` (no openapi-core needed).

    Raises ``ContractError`` when the file cannot be read, lacks the operation, or names a
    scheme it does not define.
    """
    return _security(_load(spec_file), operation_id, spec_file)


def _security(document: dict[str, Any], operation_id: str, spec_file: Path) -> OperationSecurity:
    operation: dict[str, Any] = {}
    for item in (document.get("paths") or {}).values():
        for method in HTTP_METHODS if isinstance(item, dict) else ():
            found = item.get(method)
            if isinstance(found, dict) and found.get("operationId") == operation_id:
                operation = found
    raw = operation["security"] if "security" in operation else document.get("security", [])
    if not isinstance(raw, list) or not all(isinstance(entry, dict) for entry in raw):
        raise ContractError(f"{spec_file.name}: security of {operation_id!r} is not a list")
    requirements = tuple(tuple(str(name) for name in entry) for entry in raw)
    components = document.get("components") or {}
    defined = components.get("securitySchemes") or {} if isinstance(components, dict) else {}
    schemes: dict[str, SecurityScheme] = {}
    for name in sorted({name for names in requirements for name in names}):
        scheme = _resolve(document, defined.get(name) if isinstance(defined, dict) else None)
        if not isinstance(scheme, dict):
            raise ContractError(
                f"{spec_file.name}: {operation_id!r} requires security scheme {name!r},"
                " which components.securitySchemes does not define"
            )
        schemes[name] = _scheme(name, scheme)
    return OperationSecurity(requirements, schemes)


def _resolve(document: dict[str, Any], node: Any) -> Any:
    """Follow local ``$ref``s (``#/components/...``) to the node they point at."""
    seen = 0
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and seen < 32:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            return None
        node = document
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            node = node.get(part) if isinstance(node, dict) else None
        seen += 1
    return node


def _scheme(name: str, scheme: dict[str, Any]) -> SecurityScheme:
    kind = str(scheme.get("type", ""))
    if kind == "apiKey":
        where, parameter = str(scheme.get("in", "")), str(scheme.get("name", ""))
        description = f"apiKey in {where} {parameter}"
        if where in ("header", "query", "cookie") and parameter:
            return SecurityScheme(name, "api_key", description, where, parameter)
        return SecurityScheme(name, None, description)
    if kind == "http":
        http = str(scheme.get("scheme", "")).lower()
        return SecurityScheme(name, http if http in ("bearer", "basic") else None, f"http {http}")
    return SecurityScheme(name, None, kind or "a scheme without a type")


def _load(spec_file: Path) -> dict[str, Any]:
    try:
        text = spec_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ContractError(f"cannot read {spec_file}: {exc.strerror}") from None
    try:
        document = YAML(typ="safe").load(text)
    except YAMLError as exc:
        raise ContractError(f"{spec_file.name} is not valid YAML or JSON: {exc}") from None
    if not isinstance(document, dict) or not str(document.get("openapi", "")).startswith("3"):
        raise ContractError(f"{spec_file.name} is not an OpenAPI 3 document")
    return document


def _reduce(
    document: dict[str, Any], operation_id: str, spec_file: Path
) -> tuple[str, str, dict[str, Any]]:
    """Find ``operation_id``; return its path, method and the spec reduced to that path."""
    found: list[str] = []
    for path, item in (document.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        for method in HTTP_METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            if operation.get("operationId") == operation_id:
                reduced = copy.deepcopy(document)
                kept = {k: v for k, v in item.items() if k not in ("servers", *HTTP_METHODS)}
                # credentials are checked by CredentialCheck against configured secrets;
                # openapi-core would only check that they are present
                kept[method] = {
                    k: v for k, v in operation.items() if k not in ("servers", "security")
                }
                reduced["paths"] = {path: copy.deepcopy(kept)}
                reduced["servers"] = [{"url": "/"}]
                reduced.pop("webhooks", None)
                reduced.pop("security", None)
                return str(path), method, reduced
            if operation.get("operationId"):
                found.append(str(operation["operationId"]))
    known = ", ".join(sorted(found)) or "none"
    raise ContractError(
        f"{spec_file.name} has no operation {operation_id!r} (operationIds found: {known})"
    )


def _violations(error: BaseException, side: str) -> Iterable[Violation]:
    """Translate one openapi-core error into violations, once, at this boundary."""
    from openapi_core.templating.responses.exceptions import ResponseNotFound
    from openapi_core.validation.request.exceptions import (
        MissingRequestBodyError,
        ParameterValidationError,
    )

    cause = error.__cause__
    schema_errors = getattr(cause, "schema_errors", None)
    if isinstance(error, ParameterValidationError):
        where, name = error.location, error.name
        if schema_errors:
            for item in schema_errors:
                yield Violation(where, f"{name}: {item.message}", name)
        else:
            yield Violation(where, _sentence(error, cause), name)
    elif isinstance(error, MissingRequestBodyError):
        yield Violation("body", "a request body is required")
    elif isinstance(error, ResponseNotFound):
        yield Violation("response", f"the operation declares no response {error}")
    elif schema_errors:
        location = "body" if side == "request" else "response"
        for item in schema_errors:
            pointer = "".join(f"/{_escape(part)}" for part in item.absolute_path)
            yield Violation(location, item.message, pointer or "/")
    else:
        yield Violation("body" if side == "request" else "response", _sentence(error, cause))


def _sentence(error: BaseException, cause: BaseException | None) -> str:
    text = str(error)
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text}: {cause}"
    return text


def _escape(part: object) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Parameter values as JSON-ready data (dates and the like become text)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None or isinstance(value, str | int | float | bool | list | dict):
            out[key] = value
        else:
            out[key] = str(value)
    return out
