"""Pacing: a sink's rate limit is spent at the moment each request leaves.

The delivery layer owns a sink's rate limit. A token taken before the sink has done its own
waiting (a free connection, an OAuth2 token, a resend after 401) is spent too early: the
requests that waited leave together, above the rate. So the delivery layer puts its ``Pacer``
in the context of every write, and a sink that sends requests calls ``pace_request()`` right
before each one leaves, resends included, and declares ``paces_requests = True`` so the
delivery layer does not take a token for it as well. For any other sink the delivery layer
paces the call to ``write`` itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol


class Pacer(Protocol):
    """Waits until the next request may leave without exceeding the rate."""

    async def wait_turn(self) -> None: ...


_current: ContextVar[Pacer | None] = ContextVar("dovetail_pacer", default=None)


async def pace_request() -> None:
    """Wait for the turn of a request about to leave; returns at once when nothing paces.

    Call it as the last await before the request is sent, once per request sent.
    """
    pacer = _current.get()
    if pacer is not None:
        await pacer.wait_turn()


@contextmanager
def pacing(pacer: Pacer) -> Iterator[None]:
    """Within the block (and the tasks it starts), ``pace_request()`` waits on ``pacer``."""
    token = _current.set(pacer)
    try:
        yield
    finally:
        _current.reset(token)


def paces_requests(sink: object) -> bool:
    """Whether ``sink`` calls ``pace_request()`` before each request it sends."""
    return getattr(sink, "paces_requests", False) is True
