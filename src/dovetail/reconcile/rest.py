"""Read a REST collection page by page (GET), following a next link or a cursor.

Each page is a JSON document; ``items`` (JSONata) picks its records and ``next`` (JSONata) the
next page: a URL (absolute or relative to the page) or, with ``cursor_param``, a cursor sent
as that query parameter. A next link must stay on the first page's origin (scheme, host,
port), so a partner's answer cannot send our credentials elsewhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from dovetail.connectors.http.auth import build_authenticator
from dovetail.connectors.http.classify import (
    StatusPolicy,
    classify_exception,
    classify_response,
    describe_request,
)
from dovetail.errors import MessageError, PermanentError, TransientError
from dovetail.mapping.jsonata import compile_expression
from dovetail.reconcile.config import RestInput
from dovetail.reconcile.readers import Chunk


async def read_rest(config: RestInput, role: str) -> AsyncIterator[Chunk]:
    """Chunks of a paginated collection, one per page."""
    items = compile_expression(config.items) if config.items else None
    follow = compile_expression(config.next) if config.next else None
    auth = build_authenticator(config.auth)
    origin = httpx.URL(config.url)
    url = origin
    params: dict[str, str] = dict(config.params)
    async with auth.make_client(timeout=config.timeout, follow_redirects=False) as client:
        for page in range(1, config.max_pages + 1):
            body = await _get(client, url, params, {**config.headers}, auth, role)
            records, rejected = _records(items.evaluate(body) if items else body, page)
            yield Chunk(records=records, rejected=rejected)
            nxt = follow.evaluate(body) if follow else None
            if nxt is None or nxt == "" or nxt == []:
                return
            if isinstance(nxt, list | dict):
                raise PermanentError(f"{role} page {page}: `next` gave a list or object")
            if config.cursor_param:
                params = {**params, config.cursor_param: str(nxt)}
                continue
            url = url.join(str(nxt))
            params = {}
            if (url.scheme, url.host, url.port) != (origin.scheme, origin.host, origin.port):
                raise PermanentError(
                    f"{role} page {page}: next link leaves {origin.scheme}://{origin.host}; refused"
                )
        raise PermanentError(f"{role}: more than {config.max_pages} pages (max_pages)")


async def _get(
    client: httpx.AsyncClient,
    url: httpx.URL,
    params: dict[str, str],
    headers: dict[str, str],
    auth: Any,
    role: str,
) -> Any:
    try:
        headers.update(await auth.headers(client))
        response = await client.get(url, params=params or None, headers=headers)
    except httpx.HTTPError as exc:
        raise _named(classify_exception(exc, "GET", url), role) from None
    failure = classify_response(response, StatusPolicy())
    if failure is not None:
        raise _named(failure, role)
    try:
        return response.json()
    except ValueError:
        where = describe_request("GET", response.request.url)
        raise PermanentError(f"{role}: {where} did not answer JSON") from None


def _named(error: MessageError, role: str) -> MessageError:
    kind = TransientError if isinstance(error, TransientError) else PermanentError
    return kind(f"{role}: {error.reason}")


def _records(found: Any, page: int) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    if found is None:
        return [], []
    values = found if isinstance(found, list) else [found]
    records: list[dict[str, Any]] = []
    rejected: list[tuple[str, str]] = []
    for index, value in enumerate(values):
        if isinstance(value, dict):
            records.append(value)
        else:
            rejected.append((f"page {page} item {index}", "not a JSON object"))
    return records, rejected
