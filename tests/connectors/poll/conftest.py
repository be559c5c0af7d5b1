"""Fixtures: the orders API (``orders_api.py``) served on 127.0.0.1 for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from orders_api import OrdersApi, Serving


@pytest.fixture
def orders_api() -> Iterator[OrdersApi]:
    """The orders API with 8 orders, no authentication."""
    api = OrdersApi()
    api.add(8)
    with Serving(api):
        yield api


@pytest.fixture
def oauth_orders_api() -> Iterator[OrdersApi]:
    """The orders API with 4 orders, requiring OAuth2 client-credentials tokens."""
    api = OrdersApi(oauth=True)
    api.add(4)
    with Serving(api):
        yield api
