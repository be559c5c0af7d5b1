"""Fixtures for the HTTP connector tests: a real partner API on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dovetail.testing.partner import PartnerServer

CLIENT_ID = "shop"
CLIENT_SECRET = "s3cret-Value-42"


@pytest.fixture
def partner() -> Iterator[PartnerServer]:
    """A partner API without OAuth, resource paths /sales-orders and /orders/{order_id}."""
    with PartnerServer(paths=("/sales-orders", "/orders/{order_id}")) as server:
        yield server


@pytest.fixture
def oauth_partner() -> Iterator[PartnerServer]:
    """A partner API that requires OAuth2 client-credentials tokens."""
    with PartnerServer(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as server:
        yield server
