"""Run a flow offline with its ``http`` sinks pointed at a local ``PartnerServer``.

The flow file is loaded again with the environment variables its http sinks read their
``url``, ``token_url``, ``client_id`` and ``client_secret`` from set to the partner's values
(``${env:ERP_URL}/sales-orders`` becomes ``http://127.0.0.1:<port>/sales-orders``). Sinks
whose URL then points at the partner are built for real and send to it; every other sink is
captured as in any offline run. Test credentials replace the real ones, so no secret of the
project is read. Retry waits still take no time (a fake clock); the partner's answers are real.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlparse

import anyio
import orjson

from dovetail.config.loader import Project, load_flow, load_project
from dovetail.config.model import Flow
from dovetail.testing.cases import PartnerSpec
from dovetail.testing.partner import PartnerServer

Role = Literal["url", "token_url", "client_id", "client_secret"]

TEST_CLIENT_ID = "dovetail-test-client"
TEST_CLIENT_SECRET = "dovetail-test-secret"

_LEADING = re.compile(r"^\$\{(?:env|secret):([A-Za-z_][A-Za-z0-9_.\-]*)(?::-[^}]*)?\}")


@dataclass
class PartnerStats:
    """What the partner saw during one run."""

    requests: int
    """Requests to resource paths (token requests not counted)."""
    accepted: list[Any]
    """Bodies the partner accepted (2xx), oldest first."""
    duplicates: int
    """Messages accepted more than once: by ``idempotency-key`` header, else by body."""
    tokens_issued: int
    statuses: list[int | None] = field(default_factory=list)
    """The answer to each resource request, in order (``None``: no answer)."""
    sinks: list[str] = field(default_factory=list)
    """The flow's sinks that sent to the partner."""


def _http_sinks(raw: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The raw (not interpolated) config of each ``http`` sink, by sink name."""
    found: dict[str, Mapping[str, Any]] = {}
    single = raw.get("sink")
    if isinstance(single, Mapping) and isinstance(single.get("http"), Mapping):
        found["sink"] = single["http"]
    many = raw.get("sinks")
    for name, item in (many if isinstance(many, Mapping) else {}).items():
        if isinstance(item, Mapping) and isinstance(item.get("http"), Mapping):
            found[str(name)] = item["http"]
    return found


def _leading_reference(value: Any) -> tuple[str, str] | None:
    """``(NAME, rest)`` when ``value`` starts with ``${env:NAME}`` or ``${secret:NAME}``."""
    if not isinstance(value, str):
        return None
    match = _LEADING.match(value)
    return (match.group(1), value[match.end() :]) if match else None


def detect_env(flow: Flow) -> dict[str, Role]:
    """The variables the flow's http sinks read partner-related values from, and their role.

    A reference at the start of a ``url`` (or of a ``token_url`` followed by a path) is the
    partner's base URL; a ``token_url`` that is only a reference is its token endpoint;
    references in ``client_id`` and ``client_secret`` receive test credentials.
    """
    roles: dict[str, Role] = {}
    for config in _http_sinks(flow.raw).values():
        found = _leading_reference(config.get("url"))
        if found is not None:
            roles.setdefault(found[0], "url")
        auth = config.get("auth")
        oauth = auth.get("oauth2_client_credentials") if isinstance(auth, Mapping) else None
        if not isinstance(oauth, Mapping):
            continue
        found = _leading_reference(oauth.get("token_url"))
        if found is not None:
            roles.setdefault(found[0], "token_url" if not found[1] else "url")
        for key in ("client_id", "client_secret"):
            found = _leading_reference(oauth.get(key))
            if found is not None and not found[1]:
                roles.setdefault(found[0], key)
    return roles


def detect_paths(flow: Flow) -> list[str]:
    """Resource paths of the http sinks' URLs (the text after a leading reference)."""
    paths: list[str] = []
    for config in _http_sinks(flow.raw).values():
        found = _leading_reference(config.get("url"))
        rest = found[1] if found is not None else urlparse(str(config.get("url", ""))).path
        path = urlparse(rest).path or "/"
        if path not in paths:
            paths.append(path)
    return paths


def partner_for(flow: Flow, spec: PartnerSpec | None = None) -> PartnerServer:
    """A (not yet started) partner serving the flow's resource paths, scripted per ``spec``."""
    spec = spec or PartnerSpec()
    return PartnerServer(
        paths=spec.paths or detect_paths(flow) or ["/"],
        conflict_on_duplicate_key=spec.conflict_on_duplicate_key,
    )


def script_partner(partner: PartnerServer, spec: PartnerSpec) -> None:
    """Apply the case's scripted answers and random faults to a started partner."""
    for path, answers in spec.script.items():
        partner.script(path, answers)
    if spec.faults is not None:
        faults = spec.faults
        partner.faults(faults.ratio, faults.kinds, seed=faults.seed, paths=partner.paths)


def _value(role: Role, partner: PartnerServer) -> str:
    return {
        "url": partner.url,
        "token_url": partner.token_url,
        "client_id": TEST_CLIENT_ID,
        "client_secret": TEST_CLIENT_SECRET,
    }[role]


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a (synchronous) flow load."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def load_for_partner(
    flow: Flow,
    partner: PartnerServer,
    env: Mapping[str, Role] | None = None,
    project: Project | None = None,
) -> tuple[Flow, list[str]]:
    """The flow loaded again with its http sinks pointed at ``partner`` (started), and the
    names of the sinks that now send to it. Configures the partner's OAuth2 client from the
    sink's resolved credentials."""
    roles = dict(env) if env is not None else detect_env(flow)
    values = {name: _value(role, partner) for name, role in roles.items()}
    with _environment(values):
        reloaded = load_flow(
            flow.path,
            project or load_project(flow.project_dir),
            environment=flow.environment,
            strict=False,
        )
    bound: list[str] = []
    for name, ref in reloaded.sinks.items():
        url = getattr(ref.config, "url", None)
        if ref.spec.name != "http" or not isinstance(url, str) or not url.startswith(partner.url):
            continue
        bound.append(name)
        auth = getattr(ref.config, "auth", None)
        oauth = getattr(auth, "oauth2_client_credentials", None)
        if oauth is not None and partner.client_id is None:
            partner.client_id = oauth.client_id
            partner.client_secret = oauth.client_secret.get_secret_value()
    return reloaded, bound


def sink_path(flow: Flow, sink: str) -> str:
    """The URL path an http sink sends to."""
    return urlparse(str(flow.sinks[sink].config.url)).path or "/"


def partner_stats(partner: PartnerServer, sinks: list[str] | None = None) -> PartnerStats:
    """Requests, accepted bodies and duplicates recorded by ``partner`` so far."""
    records = [r for r in partner.requests() if r.path != "/oauth/token"]
    keys: dict[str, int] = {}
    for record in records:
        if not record.accepted:
            continue
        key = record.headers.get("idempotency-key") or orjson.dumps(
            record.body, option=orjson.OPT_SORT_KEYS
        ).decode("utf-8")
        keys[key] = keys.get(key, 0) + 1
    return PartnerStats(
        requests=len(records),
        accepted=[r.body for r in records if r.accepted],
        duplicates=sum(1 for count in keys.values() if count > 1),
        tokens_issued=partner.tokens_issued,
        statuses=[r.status for r in records],
        sinks=list(sinks or []),
    )


async def start_partner(partner: PartnerServer) -> PartnerServer:
    """Start ``partner`` without blocking the event loop."""
    return await anyio.to_thread.run_sync(partner.start)


async def stop_partner(partner: PartnerServer) -> None:
    """Stop ``partner`` without blocking the event loop."""
    await anyio.to_thread.run_sync(partner.stop)
