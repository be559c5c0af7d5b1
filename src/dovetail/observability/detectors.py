"""Built-in detectors of sensitive values: e-mail addresses, card numbers, IBANs, bearer tokens,
JWTs and the values of secret-like keys.

Each detector finds values in free text (a log message, a failure reason, a raw input line);
``secret_keys`` also recognises keys of a mapping (``password``, ``api_key``,
``Authorization``...) whose values are masked whatever they look like. Card numbers must pass
the Luhn check and IBANs the mod-97 check, so ordinary numbers and codes are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

MASK = "***"

EMAIL = "email"
CARD = "card"
IBAN = "iban"
BEARER = "bearer"
JWT = "jwt"
SECRET_KEYS = "secret_keys"

DETECTORS: tuple[str, ...] = (EMAIL, CARD, IBAN, BEARER, JWT, SECRET_KEYS)
"""Every built-in detector, by the name used in ``observability.detect``."""

ALL_DETECTORS: frozenset[str] = frozenset(DETECTORS)

_SECRET_WORDS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "authorization",
    "privatekey",
    "accesskey",
    "credential",
    "cookie",
)
_SECRET_NAMES = frozenset({"pwd", "pass", "auth", "pin"})

_KEY_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_EMAIL_RE = re.compile(
    r"(?<![\w.%+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}(?![A-Za-z0-9\-])"
)
_DIGIT_RUN_RE = re.compile(r"(?<![A-Za-z0-9])\d+(?:[ \-]\d+)*(?![A-Za-z0-9])")
_COUNTRY_LIST = (
    "AD AE AL AT AZ BA BE BG BH BI BR BY CH CR CY CZ DE DJ DK DO EE EG ES FI FK FO FR GB GE GI GL"
    " GR GT HN HR HU IE IL IQ IS IT JO KW KZ LB LC LI LT LU LV LY MC MD ME MK MN MR MT MU NI NL NO"
    " OM PK PL PS PT QA RO RS RU SA SC SD SE SI SK SM SO ST SV TL TN TR UA VA VG XK YE"
)
IBAN_COUNTRIES = frozenset(_COUNTRY_LIST.split())
"""Countries that issue IBANs (the first two letters, upper case)."""

_IBAN_START_RE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}")
_IBAN_TAIL_RE = re.compile(r"[A-Za-z0-9]+(?: [A-Za-z0-9]+){0,9}")
_BEARER_RE = re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9\-._~+/]+=*")
_JWT_RE = re.compile(r"(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")
_KEY_RE = re.compile(
    r"(?<![A-Za-z0-9_\-])[\"']?(?P<name>[A-Za-z0-9_\-]{1,64})[\"']?[ \t]*[:=][ \t]*"
)
_VALUE_RE = re.compile(
    r"(?i)(?:(?:bearer|basic|token|digest)[ \t]+)?(?:\"[^\"]*\"|'[^']*'|[^\s,;&}\]\"']+)"
)


def luhn_valid(digits: str) -> bool:
    """True when ``digits`` (only digits) passes the Luhn checksum."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def is_card_number(text: str) -> bool:
    """True for 13-19 digits (spaces and dashes between them allowed) passing Luhn."""
    digits = text.replace(" ", "").replace("-", "")
    return digits.isdigit() and 13 <= len(digits) <= 19 and luhn_valid(digits)


def iban_valid(text: str) -> bool:
    """True when ``text`` (spaces allowed) is an IBAN: country, check digits, mod 97 == 1."""
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34 or not compact.isalnum() or not compact.isascii():
        return False
    if compact[:2] not in IBAN_COUNTRIES or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


def is_secret_key(key: object) -> bool:
    """True for mapping keys that name a secret: password, token, api_key, Authorization..."""
    if not isinstance(key, str) or not _KEY_NAME_RE.fullmatch(key):
        return False
    name = re.sub(r"[^a-z0-9]", "", key.lower())
    return name in _SECRET_NAMES or any(word in name for word in _SECRET_WORDS)


def _mask_cards(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        run = match.group(0)
        if is_card_number(run):
            return MASK
        groups = re.split(r"([ \-])", run)  # digits, separator, digits, ...
        if len(groups) == 1:
            return run
        return _mask_group_windows(groups, is_card_number)

    return _DIGIT_RUN_RE.sub(replace, text)


def _mask_ibans(text: str) -> str:
    out: list[str] = []
    pos = 0
    for start in _IBAN_START_RE.finditer(text):
        if start.start() < pos:
            continue
        tail = _IBAN_TAIL_RE.match(text, start.start())
        assert tail is not None
        groups = tail.group(0).split(" ")
        for end in _iban_candidates(groups):
            if iban_valid("".join(groups[:end])):
                out.append(text[pos : start.start()])
                out.append(MASK)
                pos = start.start() + len(" ".join(groups[:end]))
                break
    out.append(text[pos:])
    return "".join(out)


def _iban_candidates(groups: list[str]) -> list[int]:
    """How many leading groups to try as one IBAN: the first alone when it is long enough (an
    IBAN written without spaces), else runs of four-character groups, longest first."""
    if len(groups[0]) >= 15:
        return [1]
    ends: list[int] = []
    for end in range(1, len(groups) + 1):
        if len(groups[end - 1]) > 4:
            break
        if end >= 4 and sum(len(g) for g in groups[:end]) >= 15:
            ends.append(end)
        if len(groups[end - 1]) < 4:
            break
    return ends[::-1]


def _mask_group_windows(groups: list[str], valid: Callable[[str], bool]) -> str:
    """Mask the longest runs of whole separated groups that are ``valid``, left to right.

    ``groups`` alternates digits and separators; a run longer than 19 digits is never tried.
    """
    out: list[str] = []
    index = 0
    count = len(groups)
    while index < count:
        found = None
        digits = 0
        for end in range(index + 1, count + 1, 2):
            digits += len(groups[end - 1])
            if digits > 19:
                break
            if valid("".join(groups[index:end])):
                found = end
        if found is None:
            out.append(groups[index])
            if index + 1 < count:
                out.append(groups[index + 1])
            index += 2
        else:
            out.append(MASK)
            if found < count:
                out.append(groups[found])
            index = found + 1
    return "".join(out)


def _mask_key_values(text: str) -> str:
    if ":" not in text and "=" not in text:
        return text
    out: list[str] = []
    pos = 0
    for key in _KEY_RE.finditer(text):
        if key.start() < pos or not is_secret_key(key.group("name")):
            continue
        value = _VALUE_RE.match(text, key.end())
        if value is None:
            continue
        quote = value.group(0)[0] if value.group(0)[:1] in {'"', "'"} else ""
        out.append(text[pos : key.end()])
        out.append(f"{quote}{MASK}{quote}")
        pos = value.end()
    out.append(text[pos:])
    return "".join(out)


def _mask_bearer(text: str) -> str:
    return _BEARER_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


def _mask_jwt(text: str) -> str:
    return _JWT_RE.sub(MASK, text)


def _mask_email(text: str) -> str:
    return _EMAIL_RE.sub(MASK, text) if "@" in text else text


_TEXT_DETECTORS: tuple[tuple[str, Callable[[str], str]], ...] = (
    (SECRET_KEYS, _mask_key_values),
    (BEARER, _mask_bearer),
    (JWT, _mask_jwt),
    (EMAIL, _mask_email),
    (IBAN, _mask_ibans),
    (CARD, _mask_cards),
)


def detect_in_text(text: str, detectors: Iterable[str] = ALL_DETECTORS) -> str:
    """``text`` with every value found by the chosen detectors replaced by ``***``."""
    chosen = frozenset(detectors)
    for name, mask in _TEXT_DETECTORS:
        if name in chosen:
            text = mask(text)
    return text


def detect_in_number(value: int, detectors: Iterable[str] = ALL_DETECTORS) -> int | str:
    """A card number held as a JSON number is masked too (other numbers are kept)."""
    chosen = CARD in frozenset(detectors)
    if chosen and not isinstance(value, bool) and value > 0 and is_card_number(str(value)):
        return MASK
    return value


def unknown_detectors(names: Iterable[str]) -> list[str]:
    """Names in ``names`` that are not built-in detectors (for config validation)."""
    return [name for name in names if name not in ALL_DETECTORS]
