"""RFC 8288 Link header parsing (property-based) and the paginators' stop rules."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dovetail.connectors.poll.config import CursorPagination, OffsetPagination, PagePagination
from dovetail.connectors.poll.pagination import (
    CursorPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    PageResponse,
    next_link,
    parse_link_header,
)
from dovetail.connectors.poll.watermark import WatermarkTracker, later

URL_CHARS = st.characters(
    codec="ascii", categories=("L", "N"), include_characters="/:?&=%._~-+,;\"' "
)
targets = st.text(URL_CHARS, min_size=1, max_size=40).map(str.strip).filter(bool)
tokens = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz-."), min_size=1, max_size=8)
values = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=20)
spaces = st.sampled_from(["", " ", "  ", "\t"])


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def links(draw: st.DrawFn) -> tuple[str, list[str], dict[str, str]]:
    target = draw(targets)
    rels = draw(st.lists(tokens, min_size=1, max_size=3))
    names = draw(st.lists(tokens.filter(lambda t: t != "rel"), max_size=3, unique=True))
    return target, rels, {name: draw(values) for name in names}


def render(link: tuple[str, list[str], dict[str, str]], gap: str) -> str:
    target, rels, params = link
    parts = [f"<{target}>", f"rel={quote(' '.join(rels))}"]
    parts += [f"{name}{gap}={gap}{quote(value)}" for name, value in params.items()]
    return f"{gap};{gap}".join(parts)


@given(st.lists(links(), min_size=1, max_size=5), spaces)
def test_link_header_round_trips(
    expected: list[tuple[str, list[str], dict[str, str]]], gap: str
) -> None:
    header = f"{gap},{gap}".join(render(link, gap) for link in expected)
    parsed = parse_link_header(header)
    assert [link.target for link in parsed] == [target for target, _, _ in expected]
    for link, (_, rels, params) in zip(parsed, expected, strict=True):
        assert link.rels == tuple(rels)
        assert {k: v for k, v in link.params.items() if k != "rel"} == params


@given(st.lists(links(), min_size=1, max_size=5))
def test_next_link_is_the_first_link_with_rel_next(
    expected: list[tuple[str, list[str], dict[str, str]]],
) -> None:
    header = ", ".join(render(link, " ") for link in expected)
    wanted = next((t for t, rels, _ in expected if "next" in rels), None)
    assert next_link(header) == wanted


@given(st.text(max_size=200))
def test_any_header_text_parses_without_error(text: str) -> None:
    for link in parse_link_header(text):
        assert isinstance(link.target, str)


def test_unquoted_and_case_insensitive_rel() -> None:
    header = (
        "<https://api.example.com/o?page=2>; REL=Next, <https://api.example.com/o?page=9>; rel=last"
    )
    assert next_link(header) == "https://api.example.com/o?page=2"
    assert next_link(header, "LAST") == "https://api.example.com/o?page=9"
    assert next_link("") is None


def test_rel_listing_several_types_matches_each() -> None:
    assert next_link('</p/3>; rel="prefetch next"') == "/p/3"


def response(body: object, items: list[object]) -> PageResponse:
    return PageResponse("http://x/o", None, body, items)


def test_cursor_stops_when_absent_empty_or_repeated() -> None:
    paginator = CursorPaginator(CursorPagination(path="meta.next", param="after"))
    first = paginator.first("http://x/o", {"q": "1"})
    second = paginator.next(first, response({"meta": {"next": "abc"}}, [1]))
    assert second is not None
    assert second.params == {"q": "1", "after": "abc"}
    assert second.number == 2
    assert paginator.next(second, response({"meta": {"next": "abc"}}, [1])) is None
    assert paginator.next(first, response({"meta": {"next": ""}}, [1])) is None
    assert paginator.next(first, response({"meta": {}}, [1])) is None


def test_offset_stops_at_a_short_page() -> None:
    paginator = OffsetPaginator(OffsetPagination(limit=2))
    first = paginator.first("http://x/o", {})
    second = paginator.next(first, response([], [1, 2]))
    assert second is not None
    assert second.params == {"offset": "2", "limit": "2"}
    assert paginator.next(second, response([], [3])) is None


def test_page_without_size_stops_at_an_empty_page() -> None:
    paginator = PageNumberPaginator(PagePagination(param="p", start=0))
    first = paginator.first("http://x/o", {})
    assert first.params == {"p": "0"}
    second = paginator.next(first, response([], [1]))
    assert second is not None
    assert second.params == {"p": "1"}
    assert paginator.next(second, response([], [])) is None


@given(st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=30), st.randoms())
def test_watermark_never_passes_an_unsettled_record(values: list[int], rnd: object) -> None:
    tracker = WatermarkTracker(None)
    seqs = [tracker.issue() for _ in values]
    tracker.close_segment(max(values))
    order = list(seqs)
    rnd.shuffle(order)  # type: ignore[attr-defined]
    for count, seq in enumerate(order, start=1):
        tracker.settle(seq)
        if count < len(order):
            assert tracker.settled is None
    assert tracker.settled == max(values)


def test_later_compares_numbers_numerically_and_text_as_text() -> None:
    assert later(9, 10) == 10
    assert later("9", "10") == "9"
    assert later(None, "2026-01-01") == "2026-01-01"
