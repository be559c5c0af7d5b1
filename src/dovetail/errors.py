"""The whole Dovetail exception tree.

::

    DovetailError                      base of everything Dovetail raises
    ├── ConfigError                    a flow or project file is wrong; carries positions
    ├── MissingExtraError              a component needs an optional extra that is not installed
    ├── StoreError                     the state store failed (disk full, schema too new, ...)
    └── MessageError                   one message could not be processed or delivered
        ├── TransientError             worth retrying: timeouts, connection errors, 429, 5xx
        │   └── RateLimitedError       the partner asked us to slow down (may carry Retry-After)
        └── PermanentError             retrying cannot help: 4xx, schema violations, mapping errors
            ├── ValidationFailed       the payload does not match its schema
            ├── MappingFailed          a mapping expression or sheet failed on this payload
            ├── LookupMissing          a lookup key is not in its table (on_missing: dead_letter)
            └── PayloadRejected        untrusted input broke a safety limit or is malformed

Retry logic reads only the ``TransientError`` / ``PermanentError`` marker. Each connector
translates its library's exceptions into these once, at its boundary.
"""

from __future__ import annotations

from dataclasses import dataclass


class DovetailError(Exception):
    """Base class of every error Dovetail raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One configuration problem, located in a file (``path:line:col: message``)."""

    path: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


class ConfigError(DovetailError):
    """Raised when project or flow configuration is invalid; lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class MissingExtraError(DovetailError):
    """Raised when a component's optional library is missing; names the install command."""


class StoreError(DovetailError):
    """Raised when the state store cannot do what was asked."""


class MessageError(DovetailError):
    """A failure of one message. ``reason`` is short and safe to show (no payload values)."""

    def __init__(self, reason: str, *, detail: str | None = None) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(reason)


class TransientError(MessageError):
    """A failure worth retrying later (timeouts, connection errors, 408, 429, 5xx)."""

    def __init__(
        self, reason: str, *, detail: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(reason, detail=detail)
        self.retry_after = retry_after


class RateLimitedError(TransientError):
    """The partner answered 429 or similar; ``retry_after`` is honoured when given."""


class PermanentError(MessageError):
    """A failure retrying cannot fix; the message goes to the dead-letter queue."""


class ValidationFailed(PermanentError):
    """The payload does not satisfy its JSON Schema or XSD."""


class MappingFailed(PermanentError):
    """A mapping (JSONata or mapping sheet) failed for this payload."""


class LookupMissing(PermanentError):
    """A lookup key is not in the code table and the step says ``on_missing: dead_letter``."""


class PayloadRejected(PermanentError):
    """Untrusted input is malformed or breaks a safety limit (size, depth, encoding)."""
