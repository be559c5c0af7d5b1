"""Secret values resolved from ``${secret:...}`` are registered here and redacted from output.

A credential rarely travels as it was written: a partner echoing a request may show it
base64-encoded (an HTTP Basic ``Authorization`` header), percent-encoded (a URL, a query, a
form body), JSON- or Python-escaped, or in hex. ``register_secret`` therefore registers every
one of those forms (``encoded_forms``), and ``register_credential`` adds the
``user:secret`` pair a Basic header is built from; ``redact`` replaces each of them, longest
first, with ``[REDACTED]``.

Values shorter than ``MIN_SECRET_LENGTH`` characters cannot be redacted without destroying
ordinary text; configuration refuses them (see ``dovetail.config.interpolate``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from urllib.parse import quote, quote_plus

__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "Redactor",
    "encoded_forms",
    "redact",
    "register_credential",
    "register_secret",
]

REDACTED = "[REDACTED]"

MIN_SECRET_LENGTH = 4
"""The shortest secret value that is redacted; shorter (non-empty) ones are refused."""

_MIN_FRAGMENT = 4
"""The shortest base64 fragment registered for a secret embedded in a longer encoded text
(24 bits: a 4-character secret has a fragment of 4 or 5 characters in every alignment)."""

_PERCENT_ESCAPE = re.compile(r"%[0-9A-F]{2}")


def _percent_forms(value: str) -> set[str]:
    forms = {quote(value, safe=""), quote(value), quote_plus(value, safe=""), quote_plus(value)}
    return forms | {_PERCENT_ESCAPE.sub(lambda m: m.group(0).lower(), form) for form in forms}


def _escaped_forms(value: str) -> set[str]:
    forms = {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    forms.add(repr(value)[1:-1])
    return forms


def _base64_forms(data: bytes) -> set[str]:
    """The standard and URL-safe base64 of ``data`` (with and without padding), and the
    fragments that encode ``data`` wherever it sits inside a longer text (``user:secret``, a
    JSON document): one per alignment of ``data`` in the 3-byte groups of base64."""
    forms: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(data).decode("ascii")
        forms.update((whole, whole.rstrip("=")))
        for shift in range(3):
            encoded = encode(b"\0" * shift + data).decode("ascii")
            # character i carries bits [6i, 6i + 6): keep those carrying only bits of data
            start = -(-8 * shift // 6)
            end = 8 * (shift + len(data)) // 6
            if end - start >= _MIN_FRAGMENT:
                forms.add(encoded[start:end])
    return forms


def encoded_forms(value: str) -> set[str]:
    """``value`` and every encoding of it that a credential travels in.

    Literal; percent-encoded (``quote`` and ``quote_plus``, upper- and lower-case escapes);
    JSON- and Python-escaped; hex (both cases); base64 standard and URL-safe, with and
    without padding, alone or embedded in a longer encoded text; and each form with ``/``
    escaped as ``\\/`` (as some JSON encoders write it).
    """
    data = value.encode("utf-8")
    hexed = binascii.hexlify(data).decode("ascii")
    forms = {value, hexed, hexed.upper()}
    forms |= _percent_forms(value) | _escaped_forms(value) | _base64_forms(data)
    forms |= {form.replace("/", "\\/") for form in forms if "/" in form}
    return {form for form in forms if form}


class Redactor:
    """A set of registered secrets and their encoded forms; ``redact`` removes them all.

    Thread-safe. The process has one (``register_secret``, ``register_credential`` and
    ``redact`` use it); tests make their own.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: set[str] = set()
        self._forms: tuple[str, ...] = ()  # longest first

    def register_secret(self, value: str) -> None:
        """Remember ``value`` in every encoded form; values shorter than
        ``MIN_SECRET_LENGTH`` are not registered (configuration refuses them)."""
        if len(value) >= MIN_SECRET_LENGTH:
            self._register(encoded_forms(value))

    def register_credential(self, username: str, secret: str) -> None:
        """Remember ``secret`` and the ``username:secret`` pair an HTTP Basic header is built
        from, in every encoded form, so an echoed header is redacted whole."""
        if len(secret) >= MIN_SECRET_LENGTH:
            self._register(encoded_forms(secret) | encoded_forms(f"{username}:{secret}"))

    def redact(self, text: str) -> str:
        """``text`` with every registered form replaced by ``[REDACTED]``, longest first."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return text

    def _register(self, forms: set[str]) -> None:
        with self._lock:
            if forms <= self._known:
                return
            self._known |= forms
            self._forms = tuple(sorted(self._known, key=len, reverse=True))


_process = Redactor()


def register_secret(value: str) -> None:
    """Remember ``value`` so ``redact`` removes it, in every encoded form, from anything
    printed, logged or stored. Values shorter than ``MIN_SECRET_LENGTH`` are not
    registered (configuration refuses them before they get here)."""
    _process.register_secret(value)


def register_credential(username: str, secret: str) -> None:
    """Remember the ``username:secret`` pair an HTTP Basic header is built from (and the
    secret itself), in every encoded form, so an echoed ``Authorization`` header is redacted
    whole."""
    _process.register_credential(username, secret)


def redact(text: str) -> str:
    """Replace every registered secret form in ``text`` with ``[REDACTED]`` (longest first)."""
    return _process.redact(text)
