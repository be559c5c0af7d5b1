"""Masking of declared payload paths in everything shown to people."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

MASK = "***"


def mask_paths(payload: Any, paths: Iterable[str]) -> Any:
    """A copy of ``payload`` with every dotted path in ``paths`` replaced by ``***``.

    Paths go through lists (``lines.customer.email`` masks it in every line).
    """
    parts = [p.split(".") for p in paths if p]
    if not parts:
        return payload
    result = copy.deepcopy(payload)
    for path in parts:
        _mask(result, path)
    return result


def _mask(node: Any, path: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _mask(item, path)
        return
    if not isinstance(node, dict) or not path:
        return
    head, rest = path[0], path[1:]
    if head not in node:
        return
    if rest:
        _mask(node[head], rest)
    elif node[head] is not None:
        node[head] = MASK
