"""PII heuristics: names and sample values that look like personal data."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dovetail.governance.pii import pii_name, pii_value, tokens


@pytest.mark.parametrize(
    "path",
    [
        "email",
        "customer.email",
        "customerEmail",
        "contact.phone_number",
        "iban",
        "card_number",
        "customer_name",
        "customer.name",
        "billing_address",
        "date_of_birth",
        "birthdate",
        "ssn",
        "passport_no",
        "tax_id",
    ],
)
def test_personal_field_names_are_recognised(path: str) -> None:
    assert pii_name(path) is not None


@pytest.mark.parametrize(
    "path",
    ["order_id", "product.name", "file_name", "amount", "tax_amount", "status", "ip_address"],
)
def test_ordinary_field_names_are_not(path: str) -> None:
    assert pii_name(path) is None


def test_tokens_split_camel_and_snake_case() -> None:
    assert tokens("customerEmailAddress") == ["customer", "email", "address"]
    assert tokens("DATE_OF_BIRTH") == ["date", "of", "birth"]


@pytest.mark.parametrize(
    "value",
    [
        "ada@example.com",
        "+44 20 7946 0958",
        "GB82 WEST 1234 5698 7654 32",
        "4111 1111 1111 1111",
        "078-05-1120",
    ],
)
def test_personal_values_are_recognised(value: str) -> None:
    assert pii_value(value) is not None


@pytest.mark.parametrize(
    "value", ["WS-1001", "2026-11-20T10:15:00Z", "129.90", "paid", "4111 1111 1111 1112", 42]
)
def test_ordinary_values_are_not(value: object) -> None:
    assert pii_value(value) is None


@given(
    st.from_regex(r"[a-z][a-z0-9.]{0,15}", fullmatch=True),
    st.from_regex(r"[a-z]{2,12}\.(com|org|de|co\.uk)", fullmatch=True),
)
def test_any_email_address_is_recognised(user: str, domain: str) -> None:
    assert pii_value(f"{user}@{domain}") == "an e-mail address"


@given(st.dates().map(lambda d: d.isoformat()))
def test_dates_are_never_taken_for_phone_numbers_or_cards(value: str) -> None:
    assert pii_value(value) is None
