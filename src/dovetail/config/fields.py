"""Field types that check themselves at lint time: project files and JSONata expressions.

Config models are validated with a context ``{"project_dir": Path}``; a ``ProjectFile`` then
must exist under the project, and a ``JsonataExpr`` must parse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, ValidationInfo

from dovetail.mapping.jsonata import JsonataSyntaxError, compile_expression


def project_dir_of(info: ValidationInfo) -> Path | None:
    """The project directory a config is validated against (None: no file checks)."""
    context = info.context if isinstance(info.context, dict) else None
    if context is None:
        return None
    value = context.get("project_dir")
    return Path(value) if value is not None else None


def _check_project_file(value: str, info: ValidationInfo) -> str:
    root = project_dir_of(info)
    if root is None:
        return value
    target = value.split("#", 1)[0]
    path = Path(target) if Path(target).is_absolute() else root / target
    if not path.is_file():
        raise ValueError(f"file not found: {target} (looked in {path.parent})")
    return value


def _check_jsonata(value: str) -> str:
    try:
        compile_expression(value)
    except JsonataSyntaxError as exc:
        where = f" at character {exc.position}" if exc.position is not None else ""
        raise ValueError(f"{exc}{where}") from None
    return value


ProjectFile = Annotated[
    str,
    AfterValidator(_check_project_file),
]
"""A file of the user's project, relative to the project directory."""

JsonataExpr = Annotated[
    str,
    AfterValidator(_check_jsonata),
]
"""A JSONata expression from the flow file."""


def holds_reference(value: str) -> bool:
    """True when ``value`` still contains an unresolved ``${env:}``/``${secret:}`` reference.

    That happens only in lenient loading (lint without ``--env``, test, docs); validators that
    need the final value (URL shape, host checks) skip such values.
    """
    return "${env:" in value or "${secret:" in value
