"""Checking a database URL when a flow is loaded (lint), without importing SQLAlchemy.

``check_url`` accepts the schemes the SQL connectors support and, for a server database,
names the extra to install when its driver is missing, so that ``dovetail lint`` reports it
with the flow file's line and column instead of the flow failing when it starts.
"""

from __future__ import annotations

import importlib.util
import re

_SCHEME = re.compile(
    r"^(sqlite|postgresql|postgres|mysql|mariadb)(\+[a-z0-9_]+)?://", re.IGNORECASE
)
_DRIVERS = {
    "postgresql": ("asyncpg", "postgresql"),
    "postgres": ("asyncpg", "postgresql"),
    "mysql": ("aiomysql", "mysql"),
    "mariadb": ("aiomysql", "mysql"),
}
"""Scheme -> (module of its asyncio driver, the extra that installs it)."""

SUPPORTED = "sqlite://, postgresql://, mysql:// or mariadb://"


def check_url(url: str) -> None:
    """Raise ``ValueError`` when ``url`` names no supported database or its driver is missing.

    A URL still holding a ``${...}`` reference is left to be checked once it is resolved.
    """
    if "${" in url:
        return
    match = _SCHEME.match(url)
    if match is None:
        scheme = url.split(":", 1)[0]
        raise ValueError(f"url must start with {SUPPORTED}, found {scheme!r}")
    driver = _DRIVERS.get(match.group(1).lower())
    if driver is not None:
        module, extra = driver
        if importlib.util.find_spec(module) is None:
            raise ValueError(
                f"{match.group(1).lower()} needs {module}: pip install 'dovetail[{extra}]'"
            )
