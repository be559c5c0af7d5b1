"""Properties of the http sink's URL template: a value stays in the place it fills."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dovetail.connectors.http.url_template import UrlTemplate
from dovetail.errors import PermanentError

TEMPLATE = UrlTemplate("https://erp.example.com/api/v1/orders/{id}/lines?customer={customer}")

values = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30),
    st.text(alphabet="./\\%2eE5cC", max_size=12),  # dots, separators and their escapes
    st.integers(),
    st.booleans(),
)


def climbs(value: str) -> bool:
    """Whether ``value``, decoded any number of times, holds a ``.`` or ``..`` segment."""
    for _ in range(20):
        if any(part in (".", "..") for part in value.replace("\\", "/").split("/")):
            return True
        decoded = unquote(value)
        if decoded == value:
            return False
        value = decoded
    return True


@given(values, values)
def test_a_filled_url_keeps_host_path_shape_and_values(
    identifier: object, customer: object
) -> None:
    text = str(identifier).lower() if isinstance(identifier, bool) else str(identifier)
    payload = {"id": identifier, "customer": customer}
    if text == "" or climbs(text):
        with pytest.raises(PermanentError, match=r"URL path segment \{id\}"):
            TEMPLATE.fill(payload)
        return
    url = TEMPLATE.fill(payload)
    sent = httpx.URL(url)  # what the client puts on the wire
    assert sent.host == "erp.example.com"
    segments = sent.raw_path.decode("ascii").split("?")[0].split("/")
    assert segments[:4] == ["", "api", "v1", "orders"] and segments[5:] == ["lines"]
    assert unquote(segments[4]) == text
    expected = str(customer).lower() if isinstance(customer, bool) else str(customer)
    query = parse_qs(urlsplit(url).query, keep_blank_values=True)
    assert query == {"customer": [expected]}


@given(
    st.lists(st.sampled_from([".", "%2e", "%2E", "%252e", "%252E"]), min_size=1, max_size=2),
    st.sampled_from(["", "/", "%2f", "%2F", "\\", "%5c"]),
)
def test_every_encoding_of_a_dot_segment_is_refused(dots: list[str], separator: str) -> None:
    value = "".join(dots) + separator
    with pytest.raises(PermanentError, match=r"URL path segment \{id\} would be a dot segment"):
        TEMPLATE.fill({"id": value, "customer": "c"})


@pytest.mark.parametrize("value", ["..", "."])
def test_dot_values_are_fine_in_the_query(value: str) -> None:
    assert TEMPLATE.fill({"id": "7", "customer": value}).endswith(f"?customer={value}")


def test_a_segment_made_of_two_placeholders_is_checked_whole() -> None:
    template = UrlTemplate("http://h/orders/{a}{b}")
    with pytest.raises(PermanentError, match="dot segment"):
        template.fill({"a": ".", "b": "."})
    assert template.fill({"a": ".", "b": "x"}) == "http://h/orders/.x"


def test_a_url_without_a_path_fills_its_query() -> None:
    assert UrlTemplate("http://h?q={q}").fill({"q": "a b"}) == "http://h?q=a%20b"


def test_a_url_without_placeholders_is_sent_as_written() -> None:
    assert UrlTemplate("http://h/a/../b").fill({}) == "http://h/a/../b"
