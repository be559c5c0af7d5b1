"""Render a ``ReconcileReport`` as Markdown, self-contained HTML or JSON.

Every value from the data is escaped for its format (Markdown table cells, HTML text), and
secrets registered for redaction never appear.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import orjson

from dovetail.observability.redaction import redact
from dovetail.reconcile.report import ReconcileReport

Format = Literal["markdown", "html", "json"]
FORMATS: tuple[Format, ...] = ("markdown", "html", "json")
SUFFIXES: dict[str, Format] = {".md": "markdown", ".html": "html", ".htm": "html", ".json": "json"}

_SECTIONS: tuple[tuple[str, str, Sequence[str]], ...] = (
    ("missing", "Missing in target", ("key", "fields")),
    ("extra", "Extra in target", ("key", "fields")),
    ("duplicate_source", "Duplicate keys in source", ("key", "records")),
    ("duplicate_target", "Duplicate keys in target", ("key", "records")),
    ("mismatch", "Field mismatches", ("key", "field", "source", "target")),
    ("rejected_source", "Unreadable source records", ("where", "reason")),
    ("rejected_target", "Unreadable target records", ("where", "reason")),
)
_TOTALS = {
    "missing": "missing_in_target",
    "extra": "extra_in_target",
    "duplicate_source": "duplicate_source_keys",
    "duplicate_target": "duplicate_target_keys",
    "mismatch": "field_mismatches",
    "rejected_source": "rejected_source",
    "rejected_target": "rejected_target",
}


def format_for(path: Path | None, requested: str | None) -> Format:
    """The format asked for, else the one the output file's suffix names, else Markdown."""
    if requested is not None:
        if requested not in FORMATS:
            raise ValueError(f"unknown format {requested!r}; expected {', '.join(FORMATS)}")
        return requested
    if path is not None:
        return SUFFIXES.get(path.suffix.lower(), "markdown")
    return "markdown"


def render(report: ReconcileReport, fmt: Format) -> str:
    """The report as text in ``fmt``."""
    renderers: dict[str, Callable[[ReconcileReport], str]] = {
        "markdown": render_markdown,
        "html": render_html,
        "json": render_json,
    }
    return redact(renderers[fmt](report))


def render_json(report: ReconcileReport) -> str:
    """The report as indented JSON."""
    return orjson.dumps(report.as_dict(), default=str, option=orjson.OPT_INDENT_2).decode() + "\n"


def cell(value: Any) -> str:
    """A value as text for a table cell (JSON for structures, empty for null)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS).decode()


def verdict(report: ReconcileReport) -> str:
    """``PASSED`` or ``FAILED`` with the accuracy and threshold."""
    word = "PASSED" if report.passed else "FAILED"
    return f"{word}: accuracy {report.shown_accuracy()}% (threshold {report.threshold:g}%)"


def _rule_text(rule: dict[str, Any]) -> str:
    parts = []
    for name, value in rule.items():
        if isinstance(value, list):
            parts.append(f"{name} {', '.join(str(v) for v in value)}")
        elif isinstance(value, dict):
            parts.append(f"{name} {cell(value)}")
        else:
            parts.append(f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}")
    return "; ".join(parts)


def rule_lines(report: ReconcileReport) -> list[str]:
    """When the run started and the rules it used, one plain-text line each; then the fields
    only one side holds (each compared with a missing value)."""
    rules = report.rules
    started = report.summary()["started_at"] or "-"
    lines = [f"run at {started} ({report.duration_seconds:.2f} s)"]
    if rules:
        lines.append(f"key: {', '.join(rules['key'])}")
        blank = "yes" if rules["blank_is_null"] else "no"
        lines.append(
            f"compare: {rules['compare']}; blank is null: {blank};"
            f" threshold: {rules['threshold']:g}%"
        )
        for name, rule in rules["fields"].items():
            lines.append(f"rule {name}: {_rule_text(rule) or 'compared exactly'}")
        for option in ("ignore", "mask"):
            if rules[option]:
                lines.append(f"{option}: {', '.join(rules[option])}")
    for side, names in (
        ("source", report.source_only_fields),
        ("target", report.target_only_fields),
    ):
        if names:
            lines.append(
                f"only in the {side} (compared with a missing value; ignore them or name"
                f" target_field): {', '.join(names)}"
            )
    return lines


def _md(value: Any) -> str:
    text = cell(value).replace("\\", "\\\\")
    for char in "|`*_[]<>":
        text = text.replace(char, f"\\{char}")
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "<br>")


def render_markdown(report: ReconcileReport) -> str:
    """The report as Markdown: summary table, mismatches by field, example tables."""
    lines = [f"# Reconciliation: {_md(report.name)}", ""]
    if report.description:
        lines += [_md(report.description), ""]
    lines += [
        f"**{verdict(report)}**",
        "",
        f"- source: {_md(report.source)}",
        f"- target: {_md(report.target)}",
        f"- key: {_md(', '.join(report.key))}",
        "",
        "## Rules",
        "",
        *[f"- {_md(line)}" for line in rule_lines(report)],
        "",
        "## Counts",
        "",
        "| count | value |",
        "| --- | ---: |",
    ]
    lines += [f"| {name.replace('_', ' ')} | {value} |" for name, value in report.counts().items()]
    if report.mismatches_by_field:
        lines += ["", "## Mismatches by field", "", "| field | mismatches |", "| --- | ---: |"]
        for name, count in sorted(report.mismatches_by_field.items()):
            lines.append(f"| {_md(name)} | {count} |")
    for category, title, columns in _SECTIONS:
        rows = report.examples[category]
        if not rows:
            continue
        total = report.counts()[_TOTALS[category]]
        lines += ["", f"## {title}", "", _shown(len(rows), total), ""]
        lines.append("| " + " | ".join(columns) + " |")
        lines.append("|" + " --- |" * len(columns))
        for row in rows:
            lines.append("| " + " | ".join(_md(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _shown(shown: int, total: int) -> str:
    return f"{total} in total" if shown == total else f"{shown} of {total} shown"


_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1f2328}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}
th,td{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.n{text-align:right}
.passed{color:#1a7f37}.failed{color:#cf222e}
code{font-family:ui-monospace,monospace;white-space:pre-wrap}
""".strip()


def _h(value: Any) -> str:
    return html.escape(cell(value), quote=True)


def render_html(report: ReconcileReport) -> str:
    """The report as one self-contained HTML page (inline CSS, no scripts, all text escaped)."""
    state = "passed" if report.passed else "failed"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Reconciliation: {_h(report.name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Reconciliation: {_h(report.name)}</h1>",
    ]
    if report.description:
        parts.append(f"<p>{_h(report.description)}</p>")
    parts += [
        f'<p class="{state}"><strong>{_h(verdict(report))}</strong></p>',
        "<ul>",
        f"<li>source: <code>{_h(report.source)}</code></li>",
        f"<li>target: <code>{_h(report.target)}</code></li>",
        f"<li>key: <code>{_h(', '.join(report.key))}</code></li>",
        "</ul>",
        "<h2>Rules</h2>",
        "<ul>",
        *[f"<li>{_h(line)}</li>" for line in rule_lines(report)],
        "</ul>",
        "<table><tr><th>count</th><th>value</th></tr>",
    ]
    for name, value in report.counts().items():
        parts.append(f'<tr><td>{_h(name.replace("_", " "))}</td><td class="n">{value}</td></tr>')
    parts.append("</table>")
    if report.mismatches_by_field:
        parts.append("<h2>Mismatches by field</h2>")
        parts.append("<table><tr><th>field</th><th>mismatches</th></tr>")
        for name, count in sorted(report.mismatches_by_field.items()):
            parts.append(f'<tr><td>{_h(name)}</td><td class="n">{count}</td></tr>')
        parts.append("</table>")
    for category, title, columns in _SECTIONS:
        rows = report.examples[category]
        if not rows:
            continue
        total = report.counts()[_TOTALS[category]]
        parts.append(f"<h2>{_h(title)}</h2><p>{_h(_shown(len(rows), total))}</p><table><tr>")
        parts.extend(f"<th>{_h(c)}</th>" for c in columns)
        parts.append("</tr>")
        for row in rows:
            cells = "".join(f"<td><code>{_h(row.get(c))}</code></td>" for c in columns)
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(report: ReconcileReport, path: Path, fmt: Format) -> None:
    """Write the report to ``path`` (folders created) in ``fmt``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(report, fmt), encoding="utf-8")
