"""Structured logs: JSON lines when not on a terminal, readable on one; secrets redacted.

Every event value goes through the masking policy of the line's ``flow`` (the default policy
when there is none): registered secrets, secret-like keys, e-mails, card numbers, IBANs,
bearer tokens and JWTs never reach a log line.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from dovetail.observability.masking import policy_for

_PLAIN_KEYS = frozenset({"timestamp", "level", "logger"})


def _redact_event(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
    flow = event.get("flow")
    policy = policy_for(flow if isinstance(flow, str) else None)
    for key, value in list(event.items()):
        if key in _PLAIN_KEYS:
            continue
        if isinstance(value, BaseException):
            value = f"{type(value).__name__}: {value}"
        event[key] = policy.value(key, value)
    return event


def configure_logging(level: str = "info", *, json: bool | None = None) -> None:
    """Configure structlog for the process; logs go to stderr."""
    use_json = (not sys.stderr.isatty()) if json is None else json
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *([structlog.processors.format_exc_info] if use_json else []),
            _redact_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
