from __future__ import annotations

import base64
import json
import string
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dovetail.observability.detectors import (
    MASK,
    detect_in_text,
    iban_valid,
    is_card_number,
    is_secret_key,
    luhn_valid,
)
from dovetail.observability.masking import MaskPolicy


def luhn_complete(body: str) -> str:
    """``body`` plus the check digit that makes it pass Luhn."""
    for digit in "0123456789":
        if luhn_valid(body + digit):
            return body + digit
    raise AssertionError("unreachable")


def iban_of(country: str, bban: str) -> str:
    rearranged = bban + country + "00"
    number = int("".join(str(int(c, 36)) for c in rearranged))
    return f"{country}{98 - number % 97:02d}{bban}"


def grouped(text: str, separator: str, size: int = 4) -> str:
    return separator.join(text[i : i + size] for i in range(0, len(text), size))


card_numbers = st.integers(min_value=12, max_value=18).flatmap(
    lambda n: st.text("0123456789", min_size=n, max_size=n).map(
        lambda body: luhn_complete(str(int(body[0]) % 9 + 1) + body[1:])
    )
)
card_texts = st.tuples(card_numbers, st.sampled_from(["", " ", "-"])).map(
    lambda pair: grouped(pair[0], pair[1]) if pair[1] else pair[0]
)
ibans = st.tuples(
    st.sampled_from(["DE", "FR", "GB", "NL", "ES", "IT", "CH"]),
    st.text(string.ascii_uppercase + string.digits, min_size=11, max_size=30),
).map(lambda pair: iban_of(*pair))
# words that cannot hold a detected value: no digits, no '@', no dots, no key: value
prose = st.text(string.ascii_letters + " ,;!?()", max_size=40)


@given(prose, card_texts, prose)
def test_valid_card_numbers_are_masked_in_text(before: str, card: str, after: str) -> None:
    text = f"{before} {card} {after}"
    masked = detect_in_text(text)
    assert card not in masked
    assert MASK in masked
    assert masked == f"{before} {MASK} {after}"


@given(prose, ibans, st.booleans(), prose)
def test_valid_ibans_are_masked_in_text(before: str, iban: str, spaced: bool, after: str) -> None:
    shown = grouped(iban, " ") if spaced else iban
    masked = detect_in_text(f"{before} {shown}; {after}")
    assert masked == f"{before} {MASK}; {after}"


@given(prose)
def test_text_without_sensitive_values_is_unchanged(text: str) -> None:
    assert detect_in_text(text) == text


@given(st.text("0123456789", min_size=1, max_size=12))
def test_short_numbers_are_kept(digits: str) -> None:
    assert detect_in_text(f"order {digits} shipped") == f"order {digits} shipped"


@given(card_numbers)
def test_one_wrong_digit_is_not_a_card(card: str) -> None:
    wrong = card[:-1] + str((int(card[-1]) + 1) % 10)
    assert not is_card_number(wrong)
    assert detect_in_text(f"id {wrong}") == f"id {wrong}"


@given(ibans)
def test_iban_check_digits_matter(iban: str) -> None:
    assert iban_valid(iban)
    wrong = iban[:2] + f"{(int(iban[2:4]) + 1) % 100:02d}" + iban[4:]
    assert not iban_valid(wrong)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe+tag@mail.example.co.uk now", f"mail {MASK} now"),
        ("Authorization: Bearer abc.DEF-123_~+/=", "Authorization: ***"),
        ("sent Bearer abc.DEF-123 to partner", f"sent Bearer {MASK} to partner"),
        ('{"password": "hunter2", "n": 1}', '{"password": "***", "n": 1}'),
        ("GET /x?api_key=k-123&page=2", "GET /x?api_key=***&page=2"),
        ("client_secret=s3cr3t", "client_secret=***"),
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: ***"),
        ("card 4111-1111-1111-1111, ok", f"card {MASK}, ok"),
        ("IBAN DE89 3704 0044 0532 0130 00 due", f"IBAN {MASK} due"),
        ("ids a1234111111111111111b and ab12cd34", "ids a1234111111111111111b and ab12cd34"),
        ("at 2026-11-29T19:16:50Z took 1234 ms", "at 2026-11-29T19:16:50Z took 1234 ms"),
    ],
)
def test_examples(text: str, expected: str) -> None:
    assert detect_in_text(text) == expected


def jwt(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


@given(st.dictionaries(st.text(string.ascii_letters, max_size=5), st.integers(), max_size=3))
def test_jwts_are_masked(claims: dict[str, int]) -> None:
    token = jwt(claims)
    assert detect_in_text(f"token was {token}.") == f"token was {MASK}."


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "Passwd",
        "secret",
        "TOKEN",
        "api_key",
        "apiKey",
        "X-API-Key",
        "Authorization",
        "client_secret",
        "private_key",
        "access_token",
        "pwd",
    ],
)
def test_secret_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["name", "email", "idempotency_key", "customer_id", "amount"])
def test_plain_keys(key: str) -> None:
    assert not is_secret_key(key)


def test_policy_masks_structures_and_keeps_shape() -> None:
    payload = {
        "customer": {"email": "a.b@example.com", "name": "Ann"},
        "auth": {"user": "ann", "password": "p4ss"},
        "api_key": 12345,
        "card": 4111111111111111,
        "notes": ["pay from DE89370400440532013000", "ok"],
        "ref": "INV-42",
    }
    masked = MaskPolicy().payload(payload)
    assert masked == {
        "customer": {"email": MASK, "name": "Ann"},
        "auth": {"user": MASK, "password": MASK},
        "api_key": MASK,
        "card": MASK,
        "notes": [f"pay from {MASK}", "ok"],
        "ref": "INV-42",
    }
    assert payload["customer"]["email"] == "a.b@example.com"


def test_detectors_can_be_switched_off_or_chosen() -> None:
    text = "a.b@example.com paid with 4111 1111 1111 1111"
    assert MaskPolicy.of(detect=False).text(text) == text
    assert MaskPolicy.of(detect=["email"]).text(text) == f"{MASK} paid with 4111 1111 1111 1111"
    assert MaskPolicy.of().text(text) == f"{MASK} paid with {MASK}"


def test_declared_path_values_are_masked_in_reasons() -> None:
    policy = MaskPolicy.of(["customer.code"], detect=False)
    payload = {"customer": {"code": "CUST-99871"}}
    reason = "lookup miss: no customer CUST-99871"
    assert policy.text(reason, payload=payload) == f"lookup miss: no customer {MASK}"


@pytest.mark.parametrize(
    "text",
    [
        "a" * 50_000,
        "eyJ" + "a" * 50_000,
        "1 " * 25_000,
        "x" * 25_000 + "@" + "y" * 25_000,
        "password: " * 5_000,
        "DE89 " * 10_000,
    ],
)
def test_long_text_is_masked_in_linear_time(text: str) -> None:
    started = time.perf_counter()
    detect_in_text(text)
    assert time.perf_counter() - started < 3.0
