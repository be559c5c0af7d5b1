"""A static, self-contained HTML site from the Markdown pages.

Markdown is rendered by markdown-it-py (CommonMark plus tables) with raw HTML disabled, so
everything taken from flow files is escaped. Each page has the CSS inline and a navigation
bar. Diagrams are ``<pre class="mermaid">`` blocks: readable as text as they are, and drawn
by Mermaid when the browser can load it (the only network fetch, which may fail harmlessly).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any, cast

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token

from dovetail.projectdocs.model import ProjectDoc

MERMAID_URL = "https://cdn.jsdelivr.net/npm/mermaid@11/dist/mermaid.esm.min.mjs"

CSS = """
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328;
display:flex;min-height:100vh}
nav{width:15rem;flex:none;background:#f6f8fa;border-right:1px solid #d0d7de;padding:1rem}
nav ul{list-style:none;padding:0;margin:.5rem 0}nav li{margin:.2rem 0}
nav a{color:#0969da;text-decoration:none}nav a[aria-current]{font-weight:600}
main{flex:1;padding:1rem 2rem;max-width:72rem;overflow-x:auto}
table{border-collapse:collapse;margin:.8rem 0}
th,td{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}code{background:#eff1f3;padding:.1rem .3rem;border-radius:4px}
pre{background:#f6f8fa;padding:.8rem;overflow-x:auto;border-radius:6px}
pre code{background:none;padding:0}pre.mermaid{white-space:pre}
h1,h2{border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
@media print{nav{display:none}}
"""

SCRIPT = (
    '<script type="module">'
    f'import("{MERMAID_URL}").then((m) => m.default.run()).catch(() => {{}});'
    "</script>"
)


def _renderer() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable("table")
    default_fence = cast(RendererHTML, md.renderer).rules["fence"]

    def fence(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
        token = tokens[idx]
        if token.info.strip() == "mermaid":
            return f'<pre class="mermaid">{escape(token.content)}</pre>\n'
        rendered: str = default_fence(tokens, idx, options, env)
        return rendered

    md.add_render_rule("fence", fence)
    return md


def _relink(tokens: Sequence[Token]) -> None:
    """Links to ``.md`` pages point at the ``.html`` pages instead."""
    for token in tokens:
        if token.children:
            _relink(token.children)
        if token.type == "link_open":
            href = str(token.attrGet("href") or "")
            page, _, anchor = href.partition("#")
            if page.endswith(".md") and "://" not in page:
                token.attrSet("href", page[:-3] + ".html" + (f"#{anchor}" if anchor else ""))


def render_markdown(text: str) -> str:
    """One Markdown page as an HTML fragment (raw HTML in the text is escaped)."""
    md = _renderer()
    tokens = md.parse(text)
    _relink(tokens)
    rendered: str = md.renderer.render(tokens, md.options, {})
    return rendered


def _page(title: str, body: str, doc: ProjectDoc, depth: int, current: str | None) -> str:
    root = "../" * depth
    items = "".join(
        f'<li><a href="{escape(root)}flows/{escape(flow.name)}.html"'
        f"{' aria-current=page' if flow.name == current else ''}>{escape(flow.name)}</a></li>"
        for flow in doc.flows
    )
    script = SCRIPT if 'class="mermaid"' in body else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f'<nav><a href="{escape(root)}index.html">Interface catalog</a>\n'
        f"<ul>{items}</ul></nav>\n<main>\n{body}</main>\n{script}\n</body>\n</html>\n"
    )


def site(pages: dict[str, str], doc: ProjectDoc) -> dict[str, str]:
    """The HTML files of the site, by path, from the Markdown pages by path."""
    files: dict[str, str] = {}
    for path, text in pages.items():
        depth = path.count("/")
        name = path.rsplit("/", 1)[-1][:-3]
        current = name if path.startswith("flows/") else None
        title = f"{name} — {doc.name}" if current else f"Interface catalog — {doc.name}"
        files[path[:-3] + ".html"] = _page(title, render_markdown(text), doc, depth, current)
    return files
