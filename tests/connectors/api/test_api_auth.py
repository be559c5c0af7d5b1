"""The api source lets a request in only with a credential equal to a configured secret."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.connectors.api.test_api_source import ScriptedSink, call, write_project

from dovetail.config.loader import load_flow
from dovetail.connectors.api.contract import (
    ContractError,
    OperationSecurity,
    SecurityScheme,
    read_security,
)
from dovetail.connectors.api.credentials import CredentialCheck
from dovetail.errors import ConfigError

SECURED = """\
openapi: 3.1.0
info: {title: Secured, version: 1.0.0}
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-API-Key}
    query_key: {type: apiKey, in: query, name: api_key}
    cookie_key: {type: apiKey, in: cookie, name: session}
    token: {type: http, scheme: bearer}
    login: {type: http, scheme: basic}
    sso: {type: oauth2, flows: {clientCredentials: {tokenUrl: /token, scopes: {}}}}
    shared: {$ref: "#/components/securitySchemes/key"}
  responses:
    Order:
      description: the order
      content:
        application/json:
          schema:
            type: object
            required: [order_id]
            properties: {order_id: {type: integer}}
paths:
"""

OPERATIONS: dict[str, list[dict[str, list[str]]]] = {
    "byKey": [{"key": []}],
    "byQueryKey": [{"query_key": []}],
    "byCookie": [{"cookie_key": []}],
    "byToken": [{"token": []}],
    "byLogin": [{"login": []}],
    "bySso": [{"sso": []}],
    "byShared": [{"shared": []}],
    "byKeyOrToken": [{"key": []}, {"token": []}],
    "byKeyAndToken": [{"key": [], "token": []}],
    "anonymousOrKey": [{}, {"key": []}],
}


def secured_document() -> str:
    lines = [SECURED]
    for index, (operation, security) in enumerate(OPERATIONS.items()):
        lines.append(
            f"  /o{index}/{{order_id}}:\n"
            f"    get:\n"
            f"      operationId: {operation}\n"
            f"      security: {security}\n"
            "      parameters:\n"
            "        - {name: order_id, in: path, required: true, schema: {type: integer}}\n"
            '      responses: {"200": {$ref: "#/components/responses/Order"}}\n'
        )
    return "".join(lines)


def flow(operation: str, auth: str) -> str:
    return (
        "flow: orders-api\nversion: 1.0.0\nsource:\n  api:\n"
        f"    openapi: schemas/secured.yaml\n    operation: {operation}\n"
        f"    auth: {auth}\n"
        "sink:\n  file: {path: out/orders.jsonl, format: jsonl}\n"
    )


def path_of(operation: str) -> str:
    return f"/o{list(OPERATIONS).index(operation)}/7"


@pytest.fixture
def secured(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with the secured document; ORDERS_KEY and ORDERS_KEY_NEXT are secrets."""
    (project / "schemas").mkdir()
    (project / "schemas" / "secured.yaml").write_text(secured_document())
    monkeypatch.setenv("ORDERS_KEY", "k-current-0123456789")
    monkeypatch.setenv("ORDERS_KEY_NEXT", "k-next-9876543210")
    monkeypatch.setenv("ORDERS_TOKEN", "t-0123456789abcdef")
    monkeypatch.setenv("ORDERS_LOGIN", "acme:pa55-w0rd:with-colon")
    return project


KEYS = "{key: ['${secret:ORDERS_KEY}', '${secret:ORDERS_KEY_NEXT}']}"


def get(
    project: Path, operation: str, auth: str, attempts: list[dict[str, str]]
) -> list[httpx.Response]:
    return call(
        project,
        flow(operation, auth),
        [("GET", path_of(operation), None, headers) for headers in attempts],
        ScriptedSink("file"),
    )


def assert_unauthorized(answer: httpx.Response, detail: str) -> None:
    assert answer.status_code == 401, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["x-correlation-id"]
    assert answer.headers["x-request-id"]
    assert answer.json()["type"] == "urn:dovetail:problem:unauthorized"
    assert answer.json()["detail"].startswith(detail)


def test_a_wrong_api_key_is_401_and_only_configured_keys_get_in(secured: Path) -> None:
    answers = get(
        secured,
        "byKey",
        KEYS,
        [
            {"x-api-key": "k-current-0123456789"},
            {"x-api-key": "k-next-9876543210"},  # the rotated key is accepted as well
            {"x-api-key": "anything"},
            {"x-api-key": "k-current-012345678"},  # a prefix of a key
            {"x-api-key": "k-current-0123456789x"},
            {"x-api-key": ""},
            {},
        ],
    )
    assert [a.status_code for a in answers[:2]] == [200, 200]
    for wrong in answers[2:5]:
        assert_unauthorized(wrong, "invalid credentials")
        assert "www-authenticate" not in wrong.headers
    for missing in answers[5:]:
        assert_unauthorized(missing, "missing credentials: send the X-API-Key header")


def test_keys_in_the_query_and_in_a_cookie_are_checked(secured: Path) -> None:
    query = call(
        secured,
        flow("byQueryKey", "{query_key: ['${secret:ORDERS_KEY}']}"),
        [
            ("GET", path_of("byQueryKey") + "?api_key=k-current-0123456789", None, {}),
            ("GET", path_of("byQueryKey") + "?api_key=wrong", None, {}),
        ],
    )
    assert [a.status_code for a in query] == [200, 401]
    cookie = get(
        secured,
        "byCookie",
        "{cookie_key: ['${secret:ORDERS_KEY}']}",
        [{"cookie": "session=k-current-0123456789"}, {"cookie": "session=nope"}, {}],
    )
    assert [a.status_code for a in cookie] == [200, 401, 401]


def test_a_wrong_bearer_token_is_401_with_a_challenge(secured: Path) -> None:
    good, wrong, missing, other = get(
        secured,
        "byToken",
        "{token: ['${secret:ORDERS_TOKEN}']}",
        [
            {"authorization": "Bearer t-0123456789abcdef"},
            {"authorization": "Bearer t-0123456789abcdeF"},
            {},
            {"authorization": "Basic dC0wMTIzNDU2Nzg5YWJjZGVm"},
        ],
    )
    assert good.status_code == 200, good.text
    assert_unauthorized(wrong, "invalid credentials")
    assert wrong.headers["www-authenticate"] == 'Bearer realm="dovetail", error="invalid_token"'
    for answer in (missing, other):
        assert_unauthorized(answer, "missing credentials")
        assert answer.headers["www-authenticate"] == 'Bearer realm="dovetail"'


def test_http_basic_compares_user_and_password(secured: Path) -> None:
    login = "Basic " + base64.b64encode(b"acme:pa55-w0rd:with-colon").decode()
    wrong = "Basic " + base64.b64encode(b"acme:pa55-w0rd").decode()
    answers = get(
        secured,
        "byLogin",
        "{login: ['${secret:ORDERS_LOGIN}']}",
        [
            {"authorization": login},
            {"authorization": wrong},
            {"authorization": "Basic not base64!"},
        ],
    )
    assert answers[0].status_code == 200, answers[0].text
    for answer in answers[1:]:
        assert_unauthorized(answer, "invalid credentials")
        assert answer.headers["www-authenticate"] == 'Basic realm="dovetail", charset="UTF-8"'


def test_alternative_requirements_need_one_and_a_combined_one_needs_all(secured: Path) -> None:
    key = {"x-api-key": "k-current-0123456789"}
    token = {"authorization": "Bearer t-0123456789abcdef"}
    both_auth = "{key: ['${secret:ORDERS_KEY}'], token: ['${secret:ORDERS_TOKEN}']}"
    either = get(secured, "byKeyOrToken", both_auth, [key, token, {"x-api-key": "no"}])
    assert [a.status_code for a in either] == [200, 200, 401]
    both = get(secured, "byKeyAndToken", both_auth, [key, token, {**key, **token}])
    assert [a.status_code for a in both] == [401, 401, 200]
    anonymous = get(secured, "anonymousOrKey", KEYS, [{}])
    assert [a.status_code for a in anonymous] == [200]


def test_a_scheme_given_by_ref_is_checked(secured: Path) -> None:
    answers = get(
        secured,
        "byShared",
        "{shared: ['${secret:ORDERS_KEY}']}",
        [{"x-api-key": "k-current-0123456789"}, {"x-api-key": "k"}],
    )
    assert [a.status_code for a in answers] == [200, 401]


@pytest.mark.parametrize(
    ("operation", "auth", "message"),
    [
        (
            "byKey",
            "{}",
            "source.api.auth: operation 'byKey' requires security scheme 'key' (apiKey in"
            " header X-API-Key) but auth gives no secret for it",
        ),
        ("byKey", "{key: []}", "auth gives no secret for it"),
        ("byKey", "{key: ['']}", "auth.key: an empty secret is not allowed"),
        ("byKey", "{key: [k-1], kye: [k-1]}", "auth names security scheme 'kye'"),
        ("bySso", "{sso: [x]}", "requires security scheme 'sso' (oauth2), which the api source"),
        ("byLogin", "{login: [nocolon]}", "auth.login: an http basic credential is written"),
    ],
)
def test_a_scheme_without_usable_secrets_is_a_config_error_at_its_line(
    secured: Path, operation: str, auth: str, message: str
) -> None:
    path = secured / "flows" / "orders-api.yaml"
    path.write_text(flow(operation, auth))
    with pytest.raises(ConfigError) as raised:
        load_flow(path)
    (problem,) = raised.value.problems
    assert (problem.path, problem.line) == ("flows/orders-api.yaml", 7)
    assert message in problem.message


def test_the_source_refuses_to_start_without_secrets_even_unchecked_at_load(
    secured: Path,
) -> None:
    security = read_security(secured / "schemas" / "secured.yaml", "byKey")
    with pytest.raises(ContractError, match="auth gives no secret"):
        CredentialCheck(security, {}, "byKey")


def test_a_security_scheme_the_document_does_not_define_is_a_contract_error(
    project: Path,
) -> None:
    write_project(project, "")
    spec = project / "schemas" / "orders-api.yaml"
    spec.write_text(spec.read_text().replace("security: [{key: []}]", "security: [{nope: []}]"))
    with pytest.raises(ContractError, match=r"'nope', which components\.securitySchemes"):
        read_security(spec, "getOrder")


HEADER_KEY = OperationSecurity(
    requirements=(("key",),),
    schemes={"key": SecurityScheme("key", "api_key", "apiKey", "header", "X-API-Key")},
)

secrets_text = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40)


@given(keys=st.lists(secrets_text, min_size=1, max_size=4), presented=secrets_text)
def test_a_key_is_accepted_exactly_when_it_equals_a_configured_one(
    keys: list[str], presented: str
) -> None:
    check = CredentialCheck(HEADER_KEY, {"key": keys}, "op")

    def sent(value: str) -> dict[str, str]:
        # a header arrives as the latin-1 text of the (UTF-8) bytes that were sent
        return {"X-API-Key": value.encode("utf-8").decode("latin-1")}

    assert (check.check(sent(presented), {}, {}) is None) == (presented in keys)
    assert all(check.check(sent(key), {}, {}) is None for key in keys)
