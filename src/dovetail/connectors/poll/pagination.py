"""Pagination of a polled REST API: cursor, offset, page number or RFC 8288 ``Link`` header.

A ``Paginator`` gives the first request of a poll and, from each response, the next one
(``None``: that was the last page). Requests are plain values (``PageRequest``), so the
fetching, retrying and authenticating stays in one place (``fetch.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

from dovetail.connectors.poll.config import (
    CursorPagination,
    LinkPagination,
    OffsetPagination,
    PagePagination,
    PaginationConfig,
)
from dovetail.errors import PermanentError
from dovetail.mapping.jsonata import compile_expression


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One page to fetch: the URL and the query parameters added to it."""

    url: str
    params: dict[str, str] = field(default_factory=dict)
    number: int = 1
    """1-based position of the page within its poll."""


@dataclass(frozen=True, slots=True)
class PageResponse:
    """What a paginator may look at: the final URL, the ``Link`` header, body and items."""

    url: str
    link_header: str | None
    body: Any
    items: list[Any]


class Paginator(Protocol):
    """Walks the pages of one poll."""

    def first(self, url: str, params: dict[str, str]) -> PageRequest:
        """The first page of a poll of ``url`` with the poll's own ``params``."""
        ...

    def next(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        """The page after ``request``, or ``None`` when ``response`` was the last one."""
        ...


class SinglePage:
    """No pagination: one request per poll."""

    def first(self, url: str, params: dict[str, str]) -> PageRequest:
        return PageRequest(url, dict(params))

    def next(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        return None


class CursorPaginator:
    """The response names the next page's cursor; it goes back as a query parameter.

    Stops when the cursor is absent, empty, or the same as the one just used (a server that
    keeps answering with its last cursor would otherwise loop).
    """

    def __init__(self, config: CursorPagination) -> None:
        self._path = compile_expression(config.path)
        self._param = config.param

    def first(self, url: str, params: dict[str, str]) -> PageRequest:
        return PageRequest(url, dict(params))

    def next(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        cursor = self._path.evaluate(response.body)
        if cursor is None or isinstance(cursor, dict | list | bool) or cursor == "":
            return None
        text = str(cursor)
        if request.params.get(self._param) == text:
            return None
        return PageRequest(request.url, {**request.params, self._param: text}, request.number + 1)


class OffsetPaginator:
    """``offset``/``limit`` parameters; stops at a page shorter than ``limit``."""

    def __init__(self, config: OffsetPagination) -> None:
        self._config = config

    def first(self, url: str, params: dict[str, str]) -> PageRequest:
        config = self._config
        page = {config.offset_param: str(config.start), config.limit_param: str(config.limit)}
        return PageRequest(url, {**params, **page})

    def next(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        config = self._config
        count = len(response.items)
        if count == 0 or count < config.limit:
            return None
        offset = int(request.params[config.offset_param]) + count
        params = {**request.params, config.offset_param: str(offset)}
        return PageRequest(request.url, params, request.number + 1)


class PageNumberPaginator:
    """A page number parameter; stops at an empty page (or one shorter than ``size``)."""

    def __init__(self, config: PagePagination) -> None:
        self._config = config

    def first(self, url: str, params: dict[str, str]) -> PageRequest:
        config = self._config
        page = {config.param: str(config.start)}
        if config.size is not None and config.size_param is not None:
            page[config.size_param] = str(config.size)
        return PageRequest(url, {**params, **page})

    def next(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        config = self._config
        count = len(response.items)
        if count == 0 or (config.size is not None and count < config.size):
            return None
        number = int(request.params[config.param]) + 1
        return PageRequest(
            request.url, {**request.params, config.param: str(number)}, request.number + 1
        )


class LinkPaginator:
    """Follows the ``Link`` header's ``rel="next"`` target (RFC 8288; GitHub, GitLab, Shopify).

    The target replaces the whole URL, query included. It must stay on the configured scheme
    and host: a partner's response cannot send the poller (and its credentials) elsewhere.
    """

    def __init__(self, config: LinkPagination, base_url: str) -> None:
        self._rel = config.rel.lower()
        parts = urlsplit(base_url)
        self._origin = (parts.scheme.lower(), parts.netloc.lower())

    def first(self, url: str, params: dict[str, str]) -> PageRequest:
        return PageRequest(url, dict(params))

    def next(self, request: PageRequest, response: PageResponse) -> PageRequest | None:
        if not response.link_header:
            return None
        target = next_link(response.link_header, self._rel)
        if target is None:
            return None
        absolute = urljoin(response.url, target)
        parts = urlsplit(absolute)
        if (parts.scheme.lower(), parts.netloc.lower()) != self._origin:
            raise PermanentError("the Link header's next page is on another host; not followed")
        if absolute == response.url:
            return None
        return PageRequest(absolute, {}, request.number + 1)


def build_paginator(config: PaginationConfig | None, base_url: str) -> Paginator:
    """The paginator for a ``pagination`` block (a single page when it is absent)."""
    if config is None:
        return SinglePage()
    if config.cursor is not None:
        return CursorPaginator(config.cursor)
    if config.offset is not None:
        return OffsetPaginator(config.offset)
    if config.page is not None:
        return PageNumberPaginator(config.page)
    assert config.link is not None
    return LinkPaginator(config.link, base_url)


@dataclass(frozen=True, slots=True)
class Link:
    """One link of a ``Link`` header: its target and parameters (names lower-cased)."""

    target: str
    params: dict[str, str]

    @property
    def rels(self) -> tuple[str, ...]:
        """The relation types (``rel`` may list several, space-separated), lower-cased."""
        return tuple(self.params.get("rel", "").lower().split())


def next_link(header: str, rel: str = "next") -> str | None:
    """The target of the first link with relation ``rel`` in a ``Link`` header, else None."""
    wanted = rel.lower()
    for link in parse_link_header(header):
        if wanted in link.rels:
            return link.target
    return None


def parse_link_header(header: str) -> list[Link]:
    """Parse an RFC 8288 ``Link`` header value into its links.

    Tolerant of what servers send: commas and semicolons inside ``<...>`` and quoted
    strings, escaped quotes, extra whitespace, parameters without values, and empty
    elements. Anything unreadable after a link's target ends that link, not the header.
    For a parameter given twice the first occurrence wins (RFC 8288 section 3).
    """
    links: list[Link] = []
    length = len(header)
    index = 0
    while index < length:
        start = header.find("<", index)
        if start < 0:
            break
        end = header.find(">", start + 1)
        if end < 0:
            break
        target = header[start + 1 : end].strip()
        params: dict[str, str] = {}
        index = end + 1
        while True:
            index = _skip_space(header, index)
            if index >= length or header[index] != ";":
                break
            index, name, value = _parameter(header, index + 1)
            if name and name not in params:
                params[name] = value
        links.append(Link(target, params))
        # skip to the comma that separates this link from the next one
        while index < length and header[index] != ",":
            if header[index] == '"':
                index = _quoted(header, index)[0]
            else:
                index += 1
    return links


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t":
        index += 1
    return index


def _parameter(text: str, index: int) -> tuple[int, str, str]:
    """Read ``name[*] [= token | quoted-string]`` from ``index``; returns the new index."""
    index = _skip_space(text, index)
    begin = index
    while index < len(text) and text[index] not in "=;, \t":
        index += 1
    name = text[begin:index].lower()
    index = _skip_space(text, index)
    if index >= len(text) or text[index] != "=":
        return index, name, ""
    index = _skip_space(text, index + 1)
    if index < len(text) and text[index] == '"':
        index, value = _quoted(text, index)
        return index, name, value
    begin = index
    while index < len(text) and text[index] not in ";,":
        index += 1
    return index, name, text[begin:index].strip()


def _quoted(text: str, index: int) -> tuple[int, str]:
    """Read a quoted string starting at the quote at ``index`` (backslash escapes)."""
    chars: list[str] = []
    index += 1
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            chars.append(text[index + 1])
            index += 2
            continue
        if char == '"':
            return index + 1, "".join(chars)
        chars.append(char)
        index += 1
    return index, "".join(chars)
