"""The merge: walk both staged sides in key order at once and classify every key.

Both sides arrive sorted by the same byte order, so one pass pairs them: a key only in the
source is missing in the target, a key only in the target is extra, a key on both is matched
and (when unique on both sides) compared field by field. Runs of equal keys on one side are
duplicates. Only the current key of each side is in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from dovetail.reconcile.config import ReconcileConfig
from dovetail.reconcile.report import ReconcileReport, masked
from dovetail.reconcile.staging import Side, Staging
from dovetail.reconcile.values import FieldComparer, display_key


@dataclass(slots=True)
class KeyGroup:
    """The records of one side that share a key: the first one's fields and how many."""

    key: bytes
    fields: bytes
    count: int


def key_groups(rows: Iterator[tuple[bytes, bytes]]) -> Iterator[KeyGroup]:
    """Consecutive rows with the same key, folded into one ``KeyGroup``."""
    current: KeyGroup | None = None
    for key, fields in rows:
        if current is not None and current.key == key:
            current.count += 1
            continue
        if current is not None:
            yield current
        current = KeyGroup(key, fields, 1)
    if current is not None:
        yield current


class Merger:
    """Fills a ``ReconcileReport`` from a loaded, indexed ``Staging``."""

    def __init__(self, config: ReconcileConfig, report: ReconcileReport) -> None:
        self._config = config
        self._report = report
        self._key = list(config.key)
        self._mask = set(config.mask)
        self._comparers: dict[str, FieldComparer] = {}
        # identical raw values are equal under every rule except a source-side ``map``
        self._identical_is_equal = not any(rule.map for rule in config.fields.values())

    def _comparer(self, name: str) -> FieldComparer:
        comparer = self._comparers.get(name)
        if comparer is None:
            comparer = FieldComparer(
                self._config.rule(name), blank_is_null=self._config.blank_is_null
            )
            self._comparers[name] = comparer
        return comparer

    def run(self, staging: Staging) -> None:
        """Merge both sides; every key lands in exactly one category."""
        report = self._report
        sources = self._counted(key_groups(staging.in_key_order("source")), "source")
        targets = self._counted(key_groups(staging.in_key_order("target")), "target")
        s = next(sources, None)
        t = next(targets, None)
        while s is not None or t is not None:
            if t is None or (s is not None and s.key < t.key):
                assert s is not None
                report.missing_in_target += 1
                report.example("missing", self._row(s, "source"))
                s = next(sources, None)
            elif s is None or t.key < s.key:
                report.extra_in_target += 1
                report.example("extra", self._row(t, "target"))
                t = next(targets, None)
            else:
                report.matched += 1
                if s.count == 1 and t.count == 1:
                    self._compare(s, t)
                s = next(sources, None)
                t = next(targets, None)

    def _counted(self, groups: Iterator[KeyGroup], side: Side) -> Iterator[KeyGroup]:
        report = self._report
        for group in groups:
            if group.count > 1:
                if side == "source":
                    report.duplicate_source_keys += 1
                else:
                    report.duplicate_target_keys += 1
                report.example(
                    f"duplicate_{side}",
                    {"key": display_key(group.key, self._key), "records": group.count},
                )
            yield group

    def _row(self, group: KeyGroup, side: Side) -> dict[str, Any]:
        fields = orjson.loads(group.fields)
        return {"key": display_key(group.key, self._key), "fields": masked(fields, self._mask)}

    def _compare(self, s: KeyGroup, t: KeyGroup) -> None:
        report = self._report
        if self._identical_is_equal and s.fields == t.fields:
            report.equal += 1
            return
        left: dict[str, Any] = orjson.loads(s.fields)
        right: dict[str, Any] = orjson.loads(t.fields)
        self.compare_fields(display_key(s.key, self._key), left, right)

    def compare_fields(self, key: Any, left: dict[str, Any], right: dict[str, Any]) -> None:
        """Judge one matched pair (key unique on both sides) field by field, under the rules.

        ``key`` is the key as shown in reports; ``left`` and ``right`` are the source's and
        the target's compared fields (target names renamed to source names). Counts the pair
        as equal or mismatched and keeps examples of its differing fields.
        """
        report = self._report
        names = list(left)
        names.extend(name for name in right if name not in left)
        differing = 0
        for name in names:
            a, b = left.get(name), right.get(name)
            if self._comparer(name).equal(a, b):
                continue
            differing += 1
            report.mismatches_by_field[name] = report.mismatches_by_field.get(name, 0) + 1
            hidden = name in self._mask
            report.example(
                "mismatch",
                {
                    "key": key,
                    "field": name,
                    "source": "***" if hidden and a is not None else a,
                    "target": "***" if hidden and b is not None else b,
                },
            )
        if differing:
            report.mismatched_records += 1
            report.field_mismatches += differing
        else:
            report.equal += 1
