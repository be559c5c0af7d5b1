"""Sample messages of a flow: its test case inputs and the files waiting in its inbox.

Governance rules read them to see which fields a flow really carries. Reading is bounded
(a few files, the first records of each) and never fails: an unreadable sample is skipped,
because ``dovetail test`` and the source itself report broken inputs.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from ruamel.yaml import YAML

if TYPE_CHECKING:
    from dovetail.config.loader import Project
    from dovetail.config.model import Flow

MAX_FILES = 20
MAX_RECORDS = 50
MAX_BYTES = 1_000_000


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample record and the file it came from (relative to the project)."""

    record: Any
    origin: str


def flow_samples(flow: Flow, project: Project) -> list[Sample]:
    """Records from ``tests/<flow>/`` case inputs and, for a file source, its inbox."""
    samples: list[Sample] = []
    case_dir = project.root / "tests" / flow.name
    for case in sorted(case_dir.glob("*.yaml"))[:MAX_FILES] if case_dir.is_dir() else []:
        samples.extend(_case_samples(case, project))
    if flow.source.spec.name == "file":
        pattern = str(getattr(flow.source.config, "path", ""))
        fmt = getattr(flow.source.config, "format", None)
        if pattern and not Path(pattern).is_absolute():
            for path in sorted(project.root.glob(pattern))[:MAX_FILES]:
                samples.extend(_file_samples(path, project, fmt))
    return samples


def field_paths(record: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every ``(dotted path, value)`` of a record; lists are looked through (no indices)."""
    if isinstance(record, dict):
        for key, value in record.items():
            if not isinstance(key, str):
                continue
            path = f"{prefix}.{key}" if prefix else key
            yield path, value
            yield from field_paths(value, path)
    elif isinstance(record, list):
        for item in record[:MAX_RECORDS]:
            yield from field_paths(item, prefix)


def _case_samples(case: Path, project: Project) -> list[Sample]:
    shown = project.display(case)
    try:
        data = YAML(typ="safe").load(case.read_text(encoding="utf-8"))
    except Exception:  # broken cases are reported by `dovetail test`
        return []
    given = data.get("input") if isinstance(data, dict) else None
    if not isinstance(given, dict):
        return []
    if isinstance(given.get("messages"), list):
        return [Sample(item, shown) for item in given["messages"][:MAX_RECORDS]]
    if "message" in given:
        return [Sample(given["message"], shown)]
    if isinstance(given.get("file"), str):
        return _file_samples(case.parent / given["file"], project, None)
    return []


def _file_samples(path: Path, project: Project, fmt: str | None) -> list[Sample]:
    shown = project.display(path)
    try:
        if not path.is_file() or path.stat().st_size > MAX_BYTES:
            return []
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    kind = fmt or path.suffix.lstrip(".").lower()
    records: list[Any] = []
    try:
        if kind == "csv":
            reader = csv.DictReader(io.StringIO(text))
            for row in reader:
                records.append({k: v for k, v in row.items() if isinstance(k, str)})
                if len(records) >= MAX_RECORDS:
                    break
        elif kind in ("jsonl", "ndjson", "json_lines", "jsonlines"):
            for line in text.splitlines()[:MAX_RECORDS]:
                if line.strip():
                    records.append(orjson.loads(line))
        elif kind == "json":
            value = orjson.loads(text)
            records = value[:MAX_RECORDS] if isinstance(value, list) else [value]
    except (csv.Error, orjson.JSONDecodeError):
        return [Sample(record, shown) for record in records]
    return [Sample(record, shown) for record in records]
