"""RFC 9457 problem details (``application/problem+json``) answered by the ``api`` source."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import orjson
from starlette.responses import Response

from dovetail.connectors.api.contract import Violation

PROBLEM_TYPES = {
    400: "invalid-request",
    401: "unauthorized",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    422: "message-rejected",
    500: "response-contract-violation",
    503: "temporarily-unavailable",
    504: "timeout",
}
"""The ``type`` of each problem, as ``urn:dovetail:problem:<name>``."""


def problem_response(
    status: int,
    detail: str,
    *,
    errors: Sequence[Violation] = (),
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """An RFC 9457 answer: ``type``, ``title``, ``status``, ``detail`` and, when given, the
    ``errors`` list (one ``{"in", "pointer", "detail"}`` per violation) and extra members."""
    name = PROBLEM_TYPES.get(status)
    body: dict[str, Any] = {
        "type": f"urn:dovetail:problem:{name}" if name else "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = [violation.as_dict() for violation in errors]
    body.update({key: value for key, value in extra.items() if value is not None})
    return Response(
        orjson.dumps(body), status, headers=headers, media_type="application/problem+json"
    )
