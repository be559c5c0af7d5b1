"""Masking in everything shown to people: declared payload paths and built-in detectors.

``mask_paths`` masks the dotted paths a flow declares in ``observability.mask``. A
``MaskPolicy`` adds the built-in detectors (``observability.detect``: e-mail addresses, card
numbers, IBANs, bearer tokens, JWTs, secret-like keys) and the redaction of registered secret
values, and masks any structure (``payload``) or free text (``text``). Logs, dead-letter
views, ``dovetail trace`` and dead-letter reasons all go through one.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dovetail.observability.detectors import (
    ALL_DETECTORS,
    MASK,
    SECRET_KEYS,
    detect_in_number,
    detect_in_text,
    is_secret_key,
)
from dovetail.observability.redaction import redact

__all__ = ["MASK", "MaskPolicy", "mask_paths", "policy_for", "use_policy"]


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


@dataclass(frozen=True)
class MaskPolicy:
    """How one flow's values are masked: its declared paths and its detectors.

    Registered secret values are redacted whatever the policy; detectors can be switched off
    (``detect: false``), declared paths cannot.
    """

    paths: tuple[str, ...] = ()
    detectors: frozenset[str] = ALL_DETECTORS

    @classmethod
    def of(cls, mask: Iterable[str] = (), detect: bool | Iterable[str] = True) -> MaskPolicy:
        """A policy from a flow's ``observability.mask`` and ``observability.detect``."""
        if detect is True:
            detectors = ALL_DETECTORS
        elif detect is False:
            detectors = frozenset()
        else:
            detectors = frozenset(detect) & ALL_DETECTORS
        return cls(paths=tuple(mask), detectors=detectors)

    @classmethod
    def of_spec(cls, observability: Any) -> MaskPolicy:
        """A policy from a flow's ``ObservabilitySpec``."""
        return cls.of(observability.mask, observability.detect)

    def payload(self, value: Any) -> Any:
        """A masked copy of any structure: dicts, lists and the strings inside them."""
        return self._detect(mask_paths(value, self.paths), secret=False)

    def text(self, text: str, *, payload: Any = None) -> str:
        """Free text (a log message, a failure reason) with sensitive values masked.

        With ``payload``, the values at the declared paths of that payload are masked
        wherever they appear in the text too.
        """
        text = redact(text)
        if payload is not None and self.paths:
            for value in sorted(_values_at(payload, self.paths), key=len, reverse=True):
                text = text.replace(value, MASK)
        return detect_in_text(text, self.detectors) if self.detectors else text

    def value(self, key: Any, value: Any) -> Any:
        """The masked form of ``value`` held under ``key`` (a log field, a mapping entry)."""
        if SECRET_KEYS in self.detectors and is_secret_key(key):
            return _mask_all(value)
        return self._detect(value, secret=False)

    def _detect(self, node: Any, *, secret: bool) -> Any:
        if secret:
            return _mask_all(node)
        if isinstance(node, str):
            return self.text(node)
        if isinstance(node, dict):
            return {k: self.value(k, v) for k, v in node.items()}
        if isinstance(node, list | tuple):
            return [self._detect(item, secret=False) for item in node]
        if isinstance(node, int) and not isinstance(node, bool):
            return detect_in_number(node, self.detectors)
        return node


DEFAULT_POLICY = MaskPolicy()
"""Every detector on, no declared path: what a flow gets unless it says otherwise."""

_policies_lock = threading.Lock()
_policies: dict[str, MaskPolicy] = {}


def use_policy(flow: str, policy: MaskPolicy) -> None:
    """Make ``policy`` the one applied to log lines of ``flow`` in this process."""
    with _policies_lock:
        _policies[flow] = policy


def policy_for(flow: str | None) -> MaskPolicy:
    """The policy registered for ``flow``, or the default (every detector on)."""
    if flow is None:
        return DEFAULT_POLICY
    with _policies_lock:
        return _policies.get(flow, DEFAULT_POLICY)


def _mask_all(node: Any) -> Any:
    """Every scalar inside ``node`` masked (the value of a secret-like key)."""
    if isinstance(node, dict):
        return {k: _mask_all(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_mask_all(item) for item in node]
    return None if node is None else MASK


def _values_at(payload: Any, paths: Iterable[str]) -> set[str]:
    """The scalar values (4 characters or more) found at ``paths`` in ``payload``, as text."""
    found: set[str] = set()

    def walk(node: Any, path: list[str]) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, path)
            return
        if not path:
            if isinstance(node, dict | list):
                return
            if node is not None and not isinstance(node, bool) and len(str(node)) >= 4:
                found.add(str(node))
            return
        if isinstance(node, dict) and path[0] in node:
            walk(node[path[0]], path[1:])

    for path in paths:
        if path:
            walk(payload, path.split("."))
    return found
