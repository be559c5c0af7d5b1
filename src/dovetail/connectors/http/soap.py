"""SOAP calls for the ``http`` sink: a WSDL operation, its envelope and its outcome (zeep).

The WSDL is loaded once (from a project file or a URL) when the sink opens. For each message,
zeep builds the request envelope from the payload's top-level fields (the operation's
parameters) with the binding's ``Content-Type`` and ``SOAPAction``; the sink sends it over
its own HTTP client (auth, timeouts, trace headers), and the reply is read back through the
binding: a SOAP Fault is permanent unless its code or text names a transient condition
(server busy), and any other failure is classified like a REST reply (5xx retried).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import Field, ValidationInfo, field_validator

from dovetail.config.fields import holds_reference, project_dir_of
from dovetail.connectors.http.classify import StatusPolicy, classify_response
from dovetail.core.component import BuildContext
from dovetail.errors import (
    ConfigError,
    MessageError,
    MissingExtraError,
    PermanentError,
    Problem,
    TransientError,
)
from dovetail.plugins.spec import ComponentConfig

if TYPE_CHECKING:
    import httpx

DEFAULT_TRANSIENT_FAULTS = ["busy", "temporarily unavailable", "try again", "throttl"]


class SoapConfig(ComponentConfig):
    wsdl: str
    """The service's WSDL: a file in the project (`schemas/erp.wsdl`) or an http(s) URL."""
    operation: str = Field(min_length=1)
    """The operation to call for each message (`CreateSalesOrder`). The payload's top-level
    fields are its parameters."""
    service: str | None = None
    """The WSDL service to use, when the WSDL defines several. Default: the first."""
    port: str | None = None
    """The port of `service` to use (e.g. the SOAP 1.2 one). Default: the first."""
    transient_faults: list[str] = Field(default_factory=lambda: list(DEFAULT_TRANSIENT_FAULTS))
    """A SOAP Fault whose code or text contains one of these (case-insensitive) is retried;
    every other Fault is dead-lettered."""

    @field_validator("wsdl")
    @classmethod
    def _wsdl_exists(cls, value: str, info: ValidationInfo) -> str:
        if value.startswith(("http://", "https://")) or holds_reference(value):
            return value
        root = project_dir_of(info)
        if root is not None:
            path = Path(value) if Path(value).is_absolute() else root / value
            if not path.is_file():
                raise ValueError(f"file not found: {value} (looked in {path.parent})")
        return value


def _local_name(code: Any) -> str:
    """``Client`` for ``soap:Client`` or ``{http://...}Client``."""
    return str(code or "").split("}")[-1].split(":")[-1]


def _fault_text(fault: Any) -> str:
    """``Client: Unknown customer`` (subcodes, SOAP 1.2, after the code: ``Sender/Busy``)."""
    codes = "/".join(
        name for name in [_local_name(fault.code), *map(_local_name, fault.subcodes or ())] if name
    )
    message = str(fault.message or "").strip()
    return f"{codes}: {message}" if codes else message


class SoapOperation:
    """One WSDL operation bound to an endpoint: builds requests and reads replies."""

    def __init__(self, config: SoapConfig, context: BuildContext) -> None:
        self.config = config
        self._context = context
        self._client: Any = None
        self._proxy: Any = None
        self._operation: Any = None

    async def load(self) -> None:
        """Load and check the WSDL (in a thread: zeep reads it synchronously).

        Raises ``ConfigError`` when the WSDL cannot be read or lacks the service, port or
        operation.
        """
        if self._client is None:
            await anyio.to_thread.run_sync(self._load)

    def _load(self) -> None:
        try:
            import zeep
            import zeep.exceptions
        except ImportError:
            raise MissingExtraError("SOAP calls need zeep: pip install 'dovetail[soap]'") from None

        config = self.config
        location = config.wsdl
        if not location.startswith(("http://", "https://")):
            location = str(self._context.resolve(location))
        settings = zeep.Settings(
            strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
        try:
            client = zeep.Client(location, settings=settings)  # type: ignore[no-untyped-call]
            if config.service is not None or config.port is not None:
                proxy = client.bind(config.service, config.port)
            else:
                proxy = client.service
            names = sorted(proxy._binding._operations)
            operation = proxy._binding.get(config.operation) if config.operation in names else None
        except (zeep.exceptions.Error, OSError, ValueError, KeyError, LookupError) as exc:
            raise ConfigError(
                [Problem(config.wsdl, 1, 1, f"cannot use the WSDL: {type(exc).__name__}: {exc}")]
            ) from None
        if operation is None:
            raise ConfigError(
                [Problem(config.wsdl, 1, 1, f"no operation {config.operation!r}; found {names}")]
            )
        self._client, self._proxy, self._operation = client, proxy, operation

    def request(self, payload: Any) -> tuple[bytes, dict[str, str]]:
        """The envelope for ``payload`` and the binding's HTTP headers.

        Raises ``PermanentError`` when the payload does not fit the operation's parameters.
        """
        import zeep.exceptions
        from lxml import etree

        if not isinstance(payload, dict):
            raise PermanentError(
                f"a SOAP call needs an object payload, found {type(payload).__name__}"
            )
        binding = self._proxy._binding
        try:
            envelope, headers = binding._create(
                self.config.operation, (), payload, client=self._client
            )
            body = etree.tostring(envelope, encoding="utf-8", xml_declaration=True)
        except (zeep.exceptions.Error, TypeError, ValueError, AttributeError) as exc:
            raise PermanentError(
                f"payload does not fit SOAP operation {self.config.operation}: {exc}"
            ) from None
        return body, {str(key).lower(): str(value) for key, value in headers.items()}

    def outcome(self, response: httpx.Response, policy: StatusPolicy) -> MessageError | None:
        """What the reply means: ``None`` (delivered), or the failure to retry or dead-letter."""
        import zeep.exceptions

        binding = self._proxy._binding
        try:
            binding.process_reply(self._client, self._operation, response)
        except zeep.exceptions.Fault as fault:
            text = _fault_text(fault)
            reason = f"SOAP Fault from {self.config.operation}: {text}"[:500]
            lowered = text.lower()
            if any(marker.lower() in lowered for marker in self.config.transient_faults):
                return TransientError(reason)
            return PermanentError(reason)
        except (zeep.exceptions.Error, ValueError) as exc:
            # not a SOAP reply (an HTML error page, an empty 503): judged by its status
            failure = classify_response(response, policy)
            if failure is None and not 200 <= response.status_code < 300:
                return TransientError(f"unreadable SOAP reply: {type(exc).__name__}")
            return failure
        return classify_response(response, policy)
