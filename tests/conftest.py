"""Shared fixtures: services (skip with a reason, or fail under CI=true), project folders."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from hypothesis import settings

# Property tests check behaviour, not speed (that is `make bench`): a machine shared with
# services and other jobs must not fail an example for being slow.
settings.register_profile("dovetail", deadline=None)
settings.load_profile("dovetail")

IN_CI = os.environ.get("CI", "").lower() == "true"


def service_available(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip when a service is down; under CI=true a missing service fails the test."""
    if service_available(host, port):
        return
    message = f"{name} is not reachable at {host}:{port} (see SERVICES.md to start it)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def postgres_url() -> str:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return os.environ.get("DOVETAIL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty project folder with a dovetail.yaml."""
    (tmp_path / "dovetail.yaml").write_text("project: test\n", encoding="utf-8")
    (tmp_path / "flows").mkdir()
    return tmp_path


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Each test starts with default structlog config (CLI tests point it at their stderr)."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
