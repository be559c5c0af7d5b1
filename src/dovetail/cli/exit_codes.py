"""Exit codes of every command (SPEC §6)."""

from __future__ import annotations

OK = 0
RUNTIME_FAILURE = 1
USAGE = 2
"""Usage or configuration error."""
SOME_FAILED = 3
"""Finished, but some messages were dead-lettered (or, for test/reconcile, some cases failed)."""
