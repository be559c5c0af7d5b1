"""Credentials of the ``api`` source: the operation's security schemes against configured secrets.

``auth`` gives, for each security scheme the operation's ``security`` names (by its name in
``components.securitySchemes``), the secrets it accepts: API keys for an ``apiKey`` scheme (in
a header, query parameter or cookie), tokens for ``http bearer``, ``user:password`` for
``http basic``. Several values per scheme let a secret be rotated without downtime.

A presented credential is compared with every accepted value of its scheme, always all of
them, with ``hmac.compare_digest`` over SHA-256 digests, so the time taken tells neither a
secret's content nor its length. A scheme the operation requires but ``auth`` gives no
secret for, or one the source cannot check (OAuth2, OpenID Connect, mutual TLS), is a
configuration error at load: the source never falls back to accepting anything.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dovetail.connectors.api.contract import ContractError, OperationSecurity, SecurityScheme

REALM = "dovetail"
"""The realm named in ``WWW-Authenticate`` challenges."""


@dataclass(frozen=True, slots=True)
class Denial:
    """Why a request is answered 401, and the ``WWW-Authenticate`` challenge (if any)."""

    detail: str
    challenge: str | None = None


def auth_problems(
    security: OperationSecurity, auth: Mapping[str, Sequence[str]], operation: str
) -> list[str]:
    """Why ``auth`` cannot check the credentials ``security`` asks for (empty: it can)."""
    problems: list[str] = []
    for name, scheme in security.schemes.items():
        if scheme.kind is None:
            problems.append(
                f"operation {operation!r} requires security scheme {name!r}"
                f" ({scheme.description}), which the api source cannot check; it checks"
                " apiKey, http bearer and http basic schemes"
            )
        elif not auth.get(name):
            problems.append(
                f"operation {operation!r} requires security scheme {name!r}"
                f" ({scheme.description}) but auth gives no secret for it; add"
                f" auth: {{{name}: ['${{secret:NAME}}']}}"
            )
    used = ", ".join(security.schemes) or "none"
    for name, values in auth.items():
        named = security.schemes.get(name)
        if named is None:
            problems.append(
                f"auth names security scheme {name!r}, which operation {operation!r} does not"
                f" use (schemes it uses: {used})"
            )
            continue
        if any(not value for value in values):
            problems.append(f"auth.{name}: an empty secret is not allowed")
        if named.kind == "basic" and not all(":" in value for value in values):
            problems.append(f"auth.{name}: an http basic credential is written 'user:password'")
    return problems


class CredentialCheck:
    """Checks a request's credentials against the operation's security and ``auth``.

    Raises ``ContractError`` (listing ``auth_problems``) when ``auth`` cannot check every
    scheme the operation requires.
    """

    def __init__(
        self, security: OperationSecurity, auth: Mapping[str, Sequence[str]], operation: str
    ) -> None:
        problems = auth_problems(security, auth, operation)
        if problems:
            raise ContractError("; ".join(problems))
        self._security = security
        self._digests = {
            name: [_digest(value.encode("utf-8")) for value in values]
            for name, values in auth.items()
        }

    @property
    def credential_headers(self) -> frozenset[str]:
        """Request headers (lower case) that carry a credential: never put on the message."""
        return frozenset(
            scheme.parameter.lower()
            for scheme in self._security.schemes.values()
            if scheme.kind == "api_key" and scheme.location == "header"
        )

    def check(
        self,
        headers: Mapping[str, str],
        query: Mapping[str, str],
        cookies: Mapping[str, str],
    ) -> Denial | None:
        """``None`` when the request satisfies one of the operation's requirements.

        ``headers`` must look names up case-insensitively (Starlette's ``Headers`` does).
        """
        if not self._security.required:
            return None
        outcomes = {
            name: self._verify(scheme, headers, query, cookies)
            for name, scheme in self._security.schemes.items()
        }
        for requirement in self._security.requirements:
            if all(outcomes[name] == "valid" for name in requirement):
                return None
        if all(outcome == "missing" for outcome in outcomes.values()):
            wanted = " or ".join(_where(s) for s in self._security.schemes.values())
            return Denial(f"missing credentials: send {wanted}", self._challenge(invalid=False))
        return Denial("invalid credentials", self._challenge(invalid=True))

    def _verify(
        self,
        scheme: SecurityScheme,
        headers: Mapping[str, str],
        query: Mapping[str, str],
        cookies: Mapping[str, str],
    ) -> str:
        """``valid``, ``invalid`` or ``missing``: what the request presents for ``scheme``."""
        presented: bytes | None
        if scheme.kind == "api_key":
            sources = {"header": headers, "query": query, "cookie": cookies}
            value = sources[scheme.location].get(scheme.parameter)
            # header values arrive decoded as latin-1: encoding back gives the bytes sent
            encoding = "latin-1" if scheme.location == "header" else "utf-8"
            presented = _encode(value, encoding) if value else None
        else:
            presented = _authorization(headers.get("authorization"), str(scheme.kind))
        if presented is None:
            return "missing"
        candidate = _digest(presented)
        matched = False
        for digest in self._digests[scheme.name]:
            matched |= hmac.compare_digest(candidate, digest)
        return "valid" if matched else "invalid"

    def _challenge(self, *, invalid: bool) -> str | None:
        challenges = []
        for scheme in self._security.schemes.values():
            if scheme.kind == "bearer":
                error = ', error="invalid_token"' if invalid else ""
                challenges.append(f'Bearer realm="{REALM}"{error}')
            elif scheme.kind == "basic":
                challenges.append(f'Basic realm="{REALM}", charset="UTF-8"')
        return ", ".join(dict.fromkeys(challenges)) or None


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def _encode(value: str, encoding: str) -> bytes:
    return value.encode(encoding, errors="surrogatepass" if encoding == "utf-8" else "replace")


def _authorization(header: str | None, kind: str) -> bytes | None:
    """The credential of an ``Authorization: <kind> <credential>`` header (None: absent).

    For ``basic`` it is the decoded ``user:password``; undecodable base64 gives ``b""``,
    which matches no secret (secrets are never empty).
    """
    if not header:
        return None
    method, _, credential = header.strip().partition(" ")
    credential = credential.strip()
    if method.lower() != kind or not credential:
        return None
    raw = _encode(credential, "latin-1")
    if kind != "basic":
        return raw
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return b""


def _where(scheme: SecurityScheme) -> str:
    if scheme.kind == "api_key":
        where = {"header": "header", "query": "query parameter", "cookie": "cookie"}
        return f"the {scheme.parameter} {where[scheme.location]}"
    return f"an Authorization: {str(scheme.kind).capitalize()} header"
