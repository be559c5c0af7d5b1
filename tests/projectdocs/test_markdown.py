"""Any text from a flow file renders literally, in paragraphs and in table cells."""

from __future__ import annotations

from typing import Any

import lxml.html
from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from dovetail.projectdocs.html import render_markdown
from dovetail.projectdocs.markdown import code, duration, fence, table, text

MD = MarkdownIt("commonmark", {"html": False}).enable("table")
# printable text, as flow files hold it; whitespace runs are folded to one space by design
TEXT = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="\u00a0"),
    max_size=60,
).map(lambda s: " ".join(s.split()))


def rendered_text(markdown: str) -> str:
    root: Any = lxml.html.fromstring(f"<div>{MD.render(markdown)}</div>")
    return str(root.text_content())


@given(TEXT.filter(bool))
def test_text_renders_as_written(value: str) -> None:
    assert rendered_text(text(value)).strip() == value.strip()


@given(TEXT.filter(bool), TEXT.filter(bool))
def test_cells_render_as_written_in_a_two_column_table(left: str, right: str) -> None:
    root: Any = lxml.html.fromstring(
        f"<div>{MD.render(table(['a', 'b'], [[text(left), code(right, cell=True)]]))}</div>"
    )
    cells = [cell.text_content() for cell in root.iter("td")]
    assert cells == [left.strip(), right.strip()]


@given(st.text(max_size=80))
def test_a_fence_is_never_closed_early(body: str) -> None:
    html = MD.render(fence("```\n" + body, "json"))
    assert html.count("<pre>") == 1 and html.endswith("</code></pre>\n")


def test_raw_html_is_escaped_in_the_site() -> None:
    html = render_markdown("<b>x</b>\n\n" + text("<img src=x onerror=alert(1)>"))
    assert "<b>" not in html and "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_durations_read_naturally() -> None:
    assert [duration(v) for v in (0.2, 5, 90, 3600, 2592000, None)] == [
        "200ms",
        "5s",
        "1m30s",
        "1h",
        "30d",
        "never",
    ]
