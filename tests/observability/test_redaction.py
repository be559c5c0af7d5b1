"""Registered secrets are redacted in every encoding a credential travels in."""

from __future__ import annotations

import base64
import json
import re
import uuid
from urllib.parse import quote, quote_plus

from hypothesis import given
from hypothesis import strategies as st

from dovetail.core.ack import Settlement
from dovetail.core.envelope import Envelope
from dovetail.core.steps import mark_failed
from dovetail.errors import PermanentError
from dovetail.observability.redaction import (
    MIN_SECRET_LENGTH,
    REDACTED,
    Redactor,
    register_credential,
    register_secret,
)

secrets = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=MIN_SECRET_LENGTH, max_size=40
)
surroundings = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)


def forms_of(value: str) -> list[str]:
    """How a credential is seen on the wire and in echoes (computed here, independently)."""
    raw = value.encode()
    std, url = base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
    percent = quote(value, safe="")
    return [
        value,
        std,
        std.rstrip("="),
        url,
        url.rstrip("="),
        percent,
        re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), percent),
        quote(value),
        quote_plus(value),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        raw.hex(),
        raw.hex().upper(),
    ]


@given(secrets, surroundings, surroundings, st.data())
def test_every_encoding_of_a_registered_secret_is_redacted(
    secret: str, before: str, after: str, data: st.DataObject
) -> None:
    redactor = Redactor()
    redactor.register_secret(secret)
    form = data.draw(st.sampled_from(forms_of(secret)))
    redacted = redactor.redact(f"{before}{form}{after}")
    assert form not in redacted
    assert REDACTED in redacted


@given(secrets, st.binary(max_size=30), st.binary(max_size=30), st.booleans())
def test_a_secret_inside_a_longer_base64_text_leaves_only_its_edges(
    secret: str, before: bytes, after: bytes, urlsafe: bool
) -> None:
    """Base64 of ``user:secret`` or of a JSON document holding the secret: what is left of
    the encoded secret is at most the two characters at each edge it shares with its
    neighbours."""
    redactor = Redactor()
    redactor.register_secret(secret)
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    raw = secret.encode()
    encoded = encode(before + raw + after).decode()
    redacted = redactor.redact(encoded)
    assert REDACTED in redacted
    neighbours = -(-len(before) * 4 // 3) + -(-len(after) * 4 // 3) + 2  # padding
    assert len(redacted) - len(REDACTED) <= neighbours + 4


def test_a_basic_credential_is_redacted_whole() -> None:
    redactor = Redactor()
    redactor.register_credential("erp-user", "pa55:word/+")
    header = base64.b64encode(b"erp-user:pa55:word/+").decode()
    assert redactor.redact(f"you sent Basic {header}.") == f"you sent Basic {REDACTED}."
    unpadded = base64.urlsafe_b64encode(b"erp-user:pa55:word/+").decode().rstrip("=")
    assert redactor.redact(f"[{unpadded}]") == f"[{REDACTED}]"
    assert (
        redactor.redact("user=erp-user&pass=pa55%3Aword%2F%2B") == f"user=erp-user&pass={REDACTED}"
    )


def test_values_too_short_to_redact_are_not_registered() -> None:
    redactor = Redactor()
    redactor.register_secret("abc")
    redactor.register_credential("user", "x1")
    assert redactor.redact("abc user:x1 YWJj") == "abc user:x1 YWJj"


@given(st.text(alphabet="0123456789-", max_size=60))
def test_text_without_any_form_of_the_secret_is_untouched(text: str) -> None:
    redactor = Redactor()
    redactor.register_secret("Zq!vault-ZQ")
    assert redactor.redact(text) == text


def test_a_failure_reason_never_holds_a_registered_secret_in_any_form() -> None:
    """The reason a step or sink gives is what dead letters, parked entries, their history
    and the journal store: it is redacted as the failure is recorded."""
    secret = f"s3-{uuid.uuid4().hex}/+"
    register_secret(secret)
    register_credential("shop", secret)
    basic = base64.b64encode(f"shop:{secret}".encode()).decode()
    envelope = Envelope(payload={}, settlement=Settlement())
    error = PermanentError(
        f"HTTP 400: you sent Basic {basic} and key={quote_plus(secret)}",
        detail=f'{{"echo": {json.dumps(secret)}, "hex": "{secret.encode().hex()}"}}',
    )
    mark_failed(envelope, "sink:erp", error)
    failure = envelope.failure
    assert failure is not None and failure.detail is not None
    for form in [*forms_of(secret), basic]:
        assert form not in failure.reason and form not in failure.detail
    assert failure.reason == f"HTTP 400: you sent Basic {REDACTED} and key={REDACTED}"
