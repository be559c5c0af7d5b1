"""Shared aliases used across the package. Imports nothing from Dovetail."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

Payload: TypeAlias = Any
"""A parsed message body: dict, list, str, number, bool or None (JSON data model)."""

Headers: TypeAlias = dict[str, str]
"""Message headers; keys are lower-case."""

AckFn: TypeAlias = Callable[[], Awaitable[None]]
"""Called once when a message's fate is settled (delivered, filtered or dead-lettered)."""

JsonDict: TypeAlias = dict[str, Any]
