"""Secret values resolved from ``${secret:...}`` are registered here and redacted from output."""

from __future__ import annotations

import threading

_lock = threading.Lock()
_secrets: set[str] = set()
REDACTED = "[REDACTED]"


def register_secret(value: str) -> None:
    """Remember ``value`` so ``redact`` removes it from anything printed or logged."""
    if len(value) >= 4:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Replace every registered secret value in ``text`` (longest first)."""
    if not _secrets:
        return text
    with _lock:
        values = sorted(_secrets, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, REDACTED)
    return text
