"""``${secret:NAME}`` from HashiCorp Vault through hvac, against a small KV HTTP server.

The server implements the Vault endpoints hvac calls: the KV v2 read
(``GET /v1/<mount>/data/<path>``), the KV v1 read (``GET /v1/<mount>/<path>``) and the AppRole
login (``POST /v1/auth/approle/login``), each checking ``X-Vault-Token``.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dovetail.config.loader import load_flow
from dovetail.config.secrets import SecretError, refresh_secret
from dovetail.errors import ConfigError
from dovetail.observability.redaction import REDACTED, redact

FLOW = """\
flow: orders-to-erp
source:
  file: {path: inbox/*.csv, format: csv}
sink:
  http:
    url: https://erp.example.com/orders
    auth: {bearer: {token: '${secret:ERP_TOKEN}'}}
"""


class FakeVault:
    """KV secrets by (mount, path); tokens allowed; every request recorded."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.tokens = {"root-token-" + uuid.uuid4().hex}
        self.approle = ("role-1", "sid-" + uuid.uuid4().hex)
        self.requests: list[tuple[str, str, str | None]] = []
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        vault = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                token = self.headers.get("X-Vault-Token")
                vault.requests.append(("GET", self.path, token))
                if token not in vault.tokens:
                    self._answer(403, {"errors": ["permission denied"]})
                    return
                parts = self.path.removeprefix("/v1/").split("/")
                mount = parts[0]
                if len(parts) > 2 and parts[1] == "data" and (mount, "v2") in vault.kinds():
                    key = (mount, "/".join(parts[2:]))
                    if key in vault.secrets:
                        meta = {"version": 1, "deletion_time": "", "destroyed": False}
                        self._answer(200, {"data": {"data": vault.secrets[key], "metadata": meta}})
                        return
                elif (mount, "v1") in vault.kinds():
                    key = (mount, "/".join(parts[1:]))
                    if key in vault.secrets:
                        self._answer(200, {"data": vault.secrets[key]})
                        return
                self._answer(404, {"errors": []})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                vault.requests.append(("POST", self.path, None))
                if (
                    self.path == "/v1/auth/approle/login"
                    and (
                        body.get("role_id"),
                        body.get("secret_id"),
                    )
                    == vault.approle
                ):
                    token = "approle-token-" + uuid.uuid4().hex
                    vault.tokens.add(token)
                    self._answer(200, {"auth": {"client_token": token, "lease_duration": 60}})
                    return
                self._answer(400, {"errors": ["invalid role or secret id"]})

        return Handler

    mounts: dict[str, str] = {"secret": "v2", "kv": "v1"}

    def kinds(self) -> set[tuple[str, str]]:
        return set(self.mounts.items())

    @property
    def token(self) -> str:
        return next(iter(self.tokens))


@pytest.fixture
def vault() -> Iterator[FakeVault]:
    server = FakeVault()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


def write_project(project: Path, vault: FakeVault, extra: str = "", path: str = "") -> Path:
    secret_path = path or f"dovetail/{uuid.uuid4().hex[:8]}"
    (project / "dovetail.yaml").write_text(
        "project: test\nsecrets:\n  vault:\n"
        f"    url: {vault.url}\n    path: {secret_path}\n    timeout: 5s\n{extra}",
        encoding="utf-8",
    )
    flow = project / "flows" / "f.yaml"
    flow.write_text(FLOW, encoding="utf-8")
    return flow


def test_secret_resolves_from_vault_kv2_and_is_redacted(
    project: Path, vault: FakeVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = "erp-" + uuid.uuid4().hex
    flow_path = write_project(project, vault, path="dovetail/prod")
    vault.secrets[("secret", "dovetail/prod")] = {"ERP_TOKEN": value}
    monkeypatch.setenv("VAULT_TOKEN", vault.token)
    monkeypatch.delenv("ERP_TOKEN", raising=False)

    flow = load_flow(flow_path)

    token = flow.sinks["sink"].config.auth.bearer.token.get_secret_value()
    assert token == value
    assert redact(f"sent {value}") == f"sent {REDACTED}"
    assert ("GET", "/v1/secret/data/dovetail/prod", vault.token) in vault.requests

    rotated = "erp-" + uuid.uuid4().hex
    vault.secrets[("secret", "dovetail/prod")] = {"ERP_TOKEN": rotated}
    assert refresh_secret("ERP_TOKEN") == rotated
    assert redact(rotated) == REDACTED


def test_kv1_and_approle_login(
    project: Path, vault: FakeVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = "erp-" + uuid.uuid4().hex
    flow_path = write_project(
        project,
        vault,
        "    mount: kv\n    kv_version: 1\n    role_id_env: T_ROLE\n    secret_id_env: T_SID\n",
        path="apps/erp",
    )
    vault.secrets[("kv", "apps/erp")] = {"ERP_TOKEN": value}
    monkeypatch.setenv("T_ROLE", vault.approle[0])
    monkeypatch.setenv("T_SID", vault.approle[1])
    monkeypatch.delenv("ERP_TOKEN", raising=False)

    flow = load_flow(flow_path)

    assert flow.sinks["sink"].config.auth.bearer.token.get_secret_value() == value
    assert vault.requests[0][:2] == ("POST", "/v1/auth/approle/login")
    assert redact(vault.approle[1]) == REDACTED  # the AppRole secret id is a secret too


def test_denied_token_is_reported_without_the_token(
    project: Path, vault: FakeVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow_path = write_project(project, vault)
    bad = "bad-token-" + uuid.uuid4().hex
    monkeypatch.setenv("VAULT_TOKEN", bad)
    monkeypatch.delenv("ERP_TOKEN", raising=False)

    with pytest.raises(ConfigError) as caught:
        load_flow(flow_path)

    (problem,) = caught.value.problems
    text = redact(str(problem))
    assert "undefined secret 'ERP_TOKEN'" in text
    assert "permission denied" in text
    assert bad not in text


def test_missing_key_and_unreachable_vault_are_reported(
    project: Path, vault: FakeVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow_path = write_project(project, vault, path="dovetail/empty")
    vault.secrets[("secret", "dovetail/empty")] = {"OTHER": "x"}
    monkeypatch.setenv("VAULT_TOKEN", vault.token)
    monkeypatch.delenv("ERP_TOKEN", raising=False)
    with pytest.raises(ConfigError) as caught:
        load_flow(flow_path)
    assert "key ERP_TOKEN" in str(caught.value.problems[0])

    vault.server.shutdown()
    vault.server.server_close()
    flow_path = write_project(project, vault)
    with pytest.raises(ConfigError) as caught:
        load_flow(flow_path)
    assert "unreachable" in str(caught.value.problems[0])


def test_lenient_loading_does_not_call_vault(
    project: Path, vault: FakeVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow_path = write_project(project, vault)
    monkeypatch.delenv("ERP_TOKEN", raising=False)
    load_flow(flow_path, strict=False)
    assert vault.requests == []


def test_refresh_of_an_unknown_secret_fails() -> None:
    with pytest.raises(SecretError):
        refresh_secret("NEVER_RESOLVED_" + uuid.uuid4().hex.upper())
