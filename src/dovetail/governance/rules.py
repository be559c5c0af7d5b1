"""The built-in governance rules: naming, versioning, ownership, error handling, idempotency,
masking of personal data and secrets kept out of flow files.

Each rule is a function ``(flow, project) -> list[Finding]``; its id and default severity are
set with ``@lint_rule``. Defaults: rules whose violation loses or leaks data or breaks a
convention the tooling relies on are errors; heuristic and documentation rules are warnings.
``lint.rules`` in ``dovetail.yaml`` changes any of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dovetail.config.model import SEMVER, ComponentRef
from dovetail.contracts.usage import field_usage
from dovetail.governance.findings import Finding
from dovetail.governance.pii import pii_name, pii_value
from dovetail.governance.plugins import Rule, lint_rule, rules_of
from dovetail.governance.samples import field_paths, flow_samples

if TYPE_CHECKING:
    from dovetail.config.loader import Project
    from dovetail.config.model import Flow

KEBAB_CASE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
SECRET_KEYS = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "client_secret",
        "api_key",
        "apikey",
        "authorization",
        "access_token",
        "refresh_token",
        "private_key",
        "secret_key",
        "access_key",
    }
)
SECRET_SUFFIXES = ("_password", "_secret", "_token", "_passphrase", "-token", "-api-key")
_URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@:\s]*:([^/@\s]+)@", re.IGNORECASE)
_PUBLISHING_SINKS = frozenset({"amqp", "nats", "kafka", "mqtt", "redis"})


@lint_rule("kebab-case-name")
def kebab_case_name(flow: Flow, project: Project) -> list[Finding]:
    """Flow names are kebab-case (``orders-to-erp``): they name files, URLs and metrics."""
    if KEBAB_CASE.match(flow.name):
        return []
    suggestion = re.sub(r"[^a-z0-9]+", "-", flow.name.lower()).strip("-")
    return [Finding(f"flow name {flow.name!r} is not kebab-case (try {suggestion!r})", ("flow",))]


@lint_rule("semantic-version", default="warning")
def semantic_version(flow: Flow, project: Project) -> list[Finding]:
    """Every flow states its version as a semantic version (``1.2.0``)."""
    declared = flow.raw.get("version")
    if declared is None:
        return [Finding("declare the flow's version (a semantic version such as 1.0.0)", ("flow",))]
    if not re.match(SEMVER, str(declared)):
        return [Finding(f"version {declared!r} is not a semantic version", ("version",))]
    return []


@lint_rule("owner", default="warning")
def owner(flow: Flow, project: Project) -> list[Finding]:
    """Every flow names the team or person who answers for it."""
    if flow.spec.owner and flow.spec.owner.strip():
        return []
    return [Finding("name the flow's owner (owner: team-or-person)", ("flow",))]


@lint_rule("error-handling-declared", default="warning")
def error_handling_declared(flow: Flow, project: Project) -> list[Finding]:
    """The ``delivery`` section states ``retry`` and ``dead_letter`` explicitly, so a reviewer
    sees what happens to a failed message at every sink."""
    delivery = flow.raw.get("delivery")
    declared = delivery if isinstance(delivery, dict) else {}
    missing = [key for key in ("retry", "dead_letter") if key not in declared]
    if not missing:
        return []
    sinks = ", ".join(sorted(flow.sinks))
    loc = ("delivery",) if isinstance(delivery, dict) else ("flow",)
    return [
        Finding(
            f"declare delivery.{' and delivery.'.join(missing)} (error handling of sink(s)"
            f" {sinks}; the defaults are attempts: 5 and dead_letter: true)",
            loc,
        )
    ]


def sink_is_idempotent(ref: ComponentRef) -> bool | None:
    """Whether writing the same message twice to this sink has one effect (None: unknown)."""
    config = ref.config
    declared = getattr(config, "idempotent", None)
    if callable(declared):
        return bool(declared())
    name = ref.spec.name
    if name == "http":
        if getattr(config, "soap", None) is not None:
            return False
        return str(getattr(config, "method", "POST")) in ("PUT", "DELETE")
    if name == "sql":
        return getattr(config, "mode", "insert") == "upsert"
    if name in ("file", "sftp"):
        mode = getattr(config, "mode", None)
        if mode is None:
            mode = "per_message" if getattr(config, "filename", None) else "append"
        return mode != "append"
    if name in _PUBLISHING_SINKS:
        return False
    return None


@lint_rule("idempotency-key")
def idempotency_key(flow: Flow, project: Project) -> list[Finding]:
    """A flow with a non-idempotent sink (HTTP POST, a broker publish, a file append, an SQL
    insert) declares ``delivery.idempotency_key``, so retries and replays deliver once."""
    if flow.spec.delivery.idempotency_key:
        return []
    return [
        Finding(
            f"sink {name!r} ({ref.spec.name}) is not idempotent: declare"
            " delivery.idempotency_key so retries and replays cannot deliver twice",
            ref.loc,
        )
        for name, ref in flow.sinks.items()
        if sink_is_idempotent(ref) is False
    ]


@lint_rule("pii-masked", default="warning")
def pii_masked(flow: Flow, project: Project) -> list[Finding]:
    """Fields that look like personal data, by name or by sample values (test case inputs,
    inbox files), are listed in ``observability.mask``."""
    masked = set(flow.spec.observability.mask)
    suspects: dict[str, str] = {}
    for sample in flow_samples(flow, project):
        for path, value in field_paths(sample.record):
            why_name = pii_name(path)
            if why_name is not None:
                suspects.setdefault(path, f"its name suggests {why_name}")
            why_value = pii_value(value)
            if why_value is not None:
                suspects.setdefault(path, f"{sample.origin} has {why_value} in it")
    for path, place in field_usage(flow).written.items():
        why_name = pii_name(path)
        if why_name is not None:
            suspects.setdefault(path, f"its name suggests {why_name}; mapped at {place}")
    sql_columns = _sql_columns(flow)
    loc = ("observability", "mask") if masked else ("flow",)
    return [
        Finding(
            f"field {path!r} looks like personal data ({why}): list it in observability.mask", loc
        )
        for path, why in sorted(suspects.items())
        if path not in sql_columns and not _covered(path, masked)
    ]


def _sql_columns(flow: Flow) -> set[str]:
    # columns are table fields, not payload paths; their payload paths are checked instead
    return {
        str(column)
        for ref in flow.sinks.values()
        if ref.spec.name == "sql"
        for column in (getattr(ref.config, "columns", None) or {})
    }


def _covered(path: str, masked: set[str]) -> bool:
    parts = path.split(".")
    return any(".".join(parts[:end]) in masked for end in range(1, len(parts) + 1))


@lint_rule("no-inline-secrets")
def no_inline_secrets(flow: Flow, project: Project) -> list[Finding]:
    """Passwords, tokens, keys and client secrets are ``${secret:NAME}`` references, never
    values in the flow file (which is committed and reviewed)."""
    findings: list[Finding] = []
    for loc, key, value in _scalars(flow.raw, ()):
        if not isinstance(value, str) or not value.strip():
            continue
        if is_secret_key(key) or (key == "value" and len(loc) > 1 and is_secret_key(loc[-2])):
            if "${secret:" in value:
                continue
            if "${" in value:
                message = f"{key!r} takes its value from {value.split(':', 1)[0]}:…}}: use"
                findings.append(Finding(f"{message} ${{secret:NAME}} so it is redacted", loc))
            else:
                findings.append(
                    Finding(f"{key!r} holds a literal secret: use ${{secret:NAME}} instead", loc)
                )
        elif "${" not in value and url_has_password(value):
            findings.append(
                Finding(f"{key!r} holds a URL with a password: use ${{secret:NAME}}", loc)
            )
    return findings


def url_has_password(value: str) -> bool:
    """Whether ``value`` is a URL with a password in it (``scheme://user:password@host``)."""
    return bool(_URL_PASSWORD.match(value.strip()))


def is_secret_key(key: Any) -> bool:
    """Whether a config key holds a secret by its name (``password``, ``api_key``, ...)."""
    lowered = str(key).lower()
    return lowered in SECRET_KEYS or lowered.endswith(SECRET_SUFFIXES)


def _scalars(node: Any, loc: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], Any, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, dict | list):
                yield from _scalars(value, (*loc, key))
            else:
                yield (*loc, key), key, value
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _scalars(value, (*loc, index))


BUILTIN_RULES: list[Rule] = rules_of(
    [
        kebab_case_name,
        semantic_version,
        owner,
        error_handling_declared,
        idempotency_key,
        pii_masked,
        no_inline_secrets,
    ],
    __name__,
)
"""Every built-in rule, in the order they are reported."""
