"""Which event loop ``dovetail run`` serves on: uvloop where the platform has it.

uvloop (libuv) roughly halves the per-request cost of the embedded HTTP server against the
default asyncio loop; where it is not installed (Windows, PyPy) the default loop is used.
Looked up without importing it, so commands that never serve pay nothing.
"""

from __future__ import annotations

import importlib.util
from typing import Any


def uvloop_available() -> bool:
    """True when uvloop is installed for this interpreter."""
    return importlib.util.find_spec("uvloop") is not None


def run_options() -> dict[str, Any]:
    """``backend_options`` for ``anyio.run``: uvloop's loop where installed, else asyncio's."""
    return {"use_uvloop": uvloop_available()}
