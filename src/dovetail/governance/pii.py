"""Heuristics for personal data: field names and sample values that look like PII.

They are deliberately simple and explainable (each answer says why), so that a finding can be
checked by a reviewer in seconds; a false alarm is silenced by masking the field or by
setting the rule to ``warning`` or ``off``.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[A-Za-z]{2,}$")
_PHONE = re.compile(r"^\+\d[\d\s().-]{6,}\d$")
_SSN = re.compile(r"^\d{3}-\d{2}-\d{4}$")
_IBAN = re.compile(r"^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$")
_CARD = re.compile(r"^\d(?:[ -]?\d){12,18}$")

_THINGS = (
    "file host product item company field table column queue topic flow step sink source event"
    " type class app application service bucket domain brand country city currency status"
    " project schema operation method path tag stage region org organisation organization"
    " display store shop carrier bank vendor supplier package module"
)
_NAME_OF_A_THING = frozenset(_THINGS.split())
_ID_WORDS = frozenset({"id", "number", "no", "nr", "num", "code", "ref", "identifier"})
_CARD_NOT_PII = frozenset({"type", "brand", "kind", "count", "wild"})
_ADDRESS_NOT_PII = frozenset({"ip", "mac", "url", "web", "server", "host", "remote", "bitcoin"})


def tokens(name: str) -> list[str]:
    """``customerEmail`` / ``customer_email`` / ``Customer-Email`` -> ``[customer, email]``."""
    return [token.lower() for token in _TOKEN.findall(name)]


def pii_name(path: str) -> str | None:
    """Why the field at dotted ``path`` looks personal by its name, or ``None``."""
    parts = [p for p in path.split(".") if p and not p.isdigit()]
    if not parts:
        return None
    leaf = tokens(parts[-1])
    context = set(leaf) | (set(tokens(parts[-2])) if len(parts) > 1 else set())
    words = set(leaf)
    if words & {"email", "mail"}:
        return "an e-mail address"
    if words & {"phone", "telephone", "mobile", "fax", "msisdn"}:
        return "a phone number"
    if "iban" in words:
        return "a bank account (IBAN)"
    if "card" in words and not words & _CARD_NOT_PII:
        return "a payment card"
    if any("birth" in word for word in words) or "dob" in words:
        return "a date of birth"
    if words & {"ssn", "nino", "bsn"} or any("passport" in word for word in words):
        return "a national identifier"
    if ("tax" in words and words & _ID_WORDS) or any(w.startswith("taxpayer") for w in words):
        return "a tax identifier"
    if words & {"address", "street", "postcode", "postal"} and not words & _ADDRESS_NOT_PII:
        return "a postal address"
    if words & {"name", "firstname", "lastname", "surname", "fullname"} and not (
        context & _NAME_OF_A_THING
    ):
        return "a person's name"
    return None


def pii_value(value: object) -> str | None:
    """Why ``value`` looks personal by its shape, or ``None``."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if len(text) > 100:
        return None
    if _EMAIL.match(text):
        return "an e-mail address"
    if _SSN.match(text):
        return "a national identifier"
    compact = text.replace(" ", "").upper()
    if _IBAN.match(compact) and _iban_checksum_ok(compact):
        return "a bank account (IBAN)"
    if _CARD.match(text) and _luhn_ok(re.sub(r"\D", "", text)):
        return "a payment card number"
    if _PHONE.match(text) and sum(c.isdigit() for c in text) >= 8:
        return "a phone number"
    return None


def _iban_checksum_ok(iban: str) -> bool:
    rearranged = iban[4:] + iban[:4]
    digits = "".join(str(int(c, 36)) for c in rearranged)
    return int(digits) % 97 == 1


def _luhn_ok(digits: str) -> bool:
    if len(set(digits)) == 1:
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        number = int(char)
        if index % 2 == 1:
            number = number * 2 - 9 if number > 4 else number * 2
        total += number
    return total % 10 == 0
