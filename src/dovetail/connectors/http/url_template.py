"""The ``http`` sink's URL template: ``{field}`` placeholders filled from a payload.

Every value is percent-encoded (``/``, ``?``, ``#``, ``%`` included), so it stays inside the
path segment or query value it fills and the host never comes from the payload. A value that
makes a path segment a dot segment — ``.`` or ``..``, or a form that decodes to one
(``%2e%2e``, ``%252e%252e``, ``../`` and ``..\\`` sequences) — or leaves it empty is refused:
the request would climb to, or land on, another resource (``/orders/{id}`` with ``..`` is
``POST /``). Such a message fails permanently with a reason naming the placeholder.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from dovetail.errors import PermanentError

__all__ = ["UrlTemplate"]

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
"""A ``{field}`` placeholder: a top-level field of the payload."""

_PARTS = re.compile(r"^((?:[^:/?#]+:)?(?://[^/?#]*)?)([^?#]*)(.*)$", re.DOTALL)
"""Scheme and authority; path; query and fragment (RFC 3986, appendix B)."""
_SEPARATORS = re.compile(r"[/\\]")
_MAX_DECODINGS = 8
"""How many rounds of percent-decoding a path segment is checked through."""


class UrlTemplate:
    """A sink URL whose path segments and query may hold ``{field}`` placeholders."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.host = urlsplit(url).netloc.lower()
        self.templated = bool(PLACEHOLDER.search(url))
        parts = _PARTS.match(url)
        assert parts is not None  # every string matches
        self._head, path, self._tail = parts.groups()
        self._segments = path.split("/")

    def fill(self, payload: Any) -> str:
        """The URL for ``payload``: each placeholder replaced by its percent-encoded value.

        Raises ``PermanentError`` when a placeholder has no scalar value in the payload, when
        a filled path segment would be empty or a dot segment (in any encoding), or when the
        filled URL would reach another host.
        """
        if not self.templated:
            return self.url
        segments = []
        for segment in self._segments:
            if not PLACEHOLDER.search(segment):
                segments.append(segment)
                continue
            filled = PLACEHOLDER.sub(lambda match: _value(payload, match.group(1)), segment)
            _check_segment(filled, segment)
            segments.append(filled)
        tail = PLACEHOLDER.sub(lambda match: _value(payload, match.group(1)), self._tail)
        url = self._head + "/".join(segments) + tail
        if urlsplit(url).netloc.lower() != self.host:
            raise PermanentError("the URL built from the payload leaves the configured host")
        return url


def _value(payload: Any, field: str) -> str:
    if not isinstance(payload, dict) or field not in payload:
        raise PermanentError(f"URL placeholder {{{field}}} has no value in the payload")
    value = payload[field]
    if value is None or isinstance(value, dict | list):
        kind = "null" if value is None else type(value).__name__
        raise PermanentError(f"URL placeholder {{{field}}} is {kind}, not a scalar")
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return quote(text, safe="")


def _check_segment(filled: str, template: str) -> None:
    """Refuse a filled path segment that is empty or decodes to a dot segment."""
    if not filled:
        raise PermanentError(f"URL path segment {template} is empty for this payload")
    text = filled
    for _ in range(_MAX_DECODINGS):
        if any(part in (".", "..") for part in _SEPARATORS.split(text)):
            raise PermanentError(
                f"URL path segment {template} would be a dot segment ('.' or '..', or a"
                " percent-encoded or slash-separated form of one) that climbs the URL path"
            )
        decoded = unquote(text)
        if decoded == text:
            return
        text = decoded
    raise PermanentError(
        f"URL path segment {template} is percent-encoded more than"
        f" {_MAX_DECODINGS - 1} times over; refused"
    )
