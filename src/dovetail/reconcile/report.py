"""The outcome of a reconciliation: exact counts, capped example rows, accuracy.

Categories (each with at most ``example_limit`` examples; counts are always exact):

- ``missing``: keys of the source that the target does not have;
- ``extra``: keys of the target that the source does not have;
- ``duplicate_source`` / ``duplicate_target``: keys held by more than one record on a side
  (such keys are not compared field by field: the pairing is ambiguous);
- ``mismatch``: one row per differing field of a matched key (key, field, both values);
- ``rejected_source`` / ``rejected_target``: records that could not be read (malformed).

Accuracy is the share of source records whose key matched exactly one target record with
every compared field equal. The verdict compares exact counts with the threshold; the
accuracy is shown rounded down (never up), with as many decimals as the threshold has (at
least ``ACCURACY_DECIMALS``), so a failure never reads like the threshold it missed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

CATEGORIES = (
    "missing",
    "extra",
    "duplicate_source",
    "duplicate_target",
    "mismatch",
    "rejected_source",
    "rejected_target",
)
MASK = "***"
ACCURACY_DECIMALS = 2
"""Fewest decimals an accuracy is shown with (rounded down)."""


@dataclass
class ReconcileReport:
    """Counts, examples and the verdict of one reconciliation."""

    name: str
    source: str
    target: str
    key: list[str]
    threshold: float
    example_limit: int
    description: str | None = None
    source_records: int = 0
    target_records: int = 0
    matched: int = 0
    """Keys found on both sides."""
    equal: int = 0
    """Matched keys, unique on both sides, with every compared field equal."""
    mismatched_records: int = 0
    """Matched keys, unique on both sides, with at least one differing field."""
    field_mismatches: int = 0
    """Differing (key, field) pairs."""
    mismatches_by_field: dict[str, int] = field(default_factory=dict)
    missing_in_target: int = 0
    extra_in_target: int = 0
    duplicate_source_keys: int = 0
    duplicate_target_keys: int = 0
    rejected_source: int = 0
    rejected_target: int = 0
    duration_seconds: float = 0.0
    started_at: datetime | None = None
    """When the run started (UTC)."""
    rules: dict[str, Any] = field(default_factory=dict)
    """The rules used: key, compare, field rules, ignore, mask, blank_is_null, threshold."""
    source_only_fields: list[str] = field(default_factory=list)
    """Compared fields only the source holds (each compared with a missing value)."""
    target_only_fields: list[str] = field(default_factory=list)
    """Compared fields only the target holds (each compared with a missing value)."""
    examples: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {name: [] for name in CATEGORIES}
    )

    @property
    def accuracy(self) -> float:
        """Percent of source records matched and equal (100 when both sides are empty)."""
        if self.source_records == 0:
            return 100.0 if self.target_records == 0 else 0.0
        return 100.0 * self.equal / self.source_records

    def _exact_accuracy(self) -> Decimal:
        if self.source_records == 0:
            return Decimal(100 if self.target_records == 0 else 0)
        return Decimal(100 * self.equal) / Decimal(self.source_records)

    @property
    def passed(self) -> bool:
        """True when the accuracy reaches the threshold, decided on the exact counts."""
        threshold = Decimal(repr(self.threshold))
        if self.source_records == 0:
            return self._exact_accuracy() >= threshold
        return Decimal(100 * self.equal) >= threshold * self.source_records

    def shown_accuracy(self, decimals: int = ACCURACY_DECIMALS) -> Decimal:
        """The accuracy rounded down to enough decimals to tell it from the threshold.

        At least ``decimals`` and as many as the threshold has, so a failing accuracy is shown
        below the threshold and a passing one at or above it.
        """
        return floor_percent(self._exact_accuracy(), self.threshold, decimals)

    def example(self, category: str, row: dict[str, Any]) -> None:
        """Keep ``row`` as an example of ``category`` while fewer than the limit are kept."""
        kept = self.examples[category]
        if len(kept) < self.example_limit:
            kept.append(row)

    def counts(self) -> dict[str, int]:
        """Every count, by name."""
        return {
            "source_records": self.source_records,
            "target_records": self.target_records,
            "matched": self.matched,
            "equal": self.equal,
            "mismatched_records": self.mismatched_records,
            "field_mismatches": self.field_mismatches,
            "missing_in_target": self.missing_in_target,
            "extra_in_target": self.extra_in_target,
            "duplicate_source_keys": self.duplicate_source_keys,
            "duplicate_target_keys": self.duplicate_target_keys,
            "rejected_source": self.rejected_source,
            "rejected_target": self.rejected_target,
        }

    def summary(self) -> dict[str, Any]:
        """Counts and verdict without examples (the payload of the ``reconcile`` step)."""
        return {
            "name": self.name,
            "source": self.source,
            "target": self.target,
            "key": self.key,
            **self.counts(),
            "mismatches_by_field": dict(sorted(self.mismatches_by_field.items())),
            "accuracy": float(self.shown_accuracy(4)),
            "threshold": self.threshold,
            "passed": self.passed,
            "started_at": _utc_text(self.started_at),
            "duration_seconds": round(self.duration_seconds, 3),
            "rules": self.rules,
            "source_only_fields": self.source_only_fields,
            "target_only_fields": self.target_only_fields,
        }

    def as_dict(self) -> dict[str, Any]:
        """The whole report as plain data (the JSON format)."""
        return {
            **self.summary(),
            "description": self.description,
            "example_limit": self.example_limit,
            "examples": self.examples,
        }


def floor_percent(value: Decimal | float, threshold: float, decimals: int = 2) -> Decimal:
    """``value`` rounded down to ``decimals`` places, or to as many as ``threshold`` has.

    Rounding down with the threshold's precision keeps the verdict readable: a value below
    the threshold is shown below it, a value at or above it is shown at or above it.
    """
    exponent = Decimal(repr(threshold)).normalize().as_tuple().exponent
    places = max(decimals, -exponent if isinstance(exponent, int) else 0)
    exact = value if isinstance(value, Decimal) else Decimal(repr(value))
    return exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_FLOOR)


def _utc_text(moment: datetime | None) -> str | None:
    """ISO-8601 in UTC with a ``Z`` (``2026-03-01T02:00:00.123456Z``)."""
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


def masked(fields: dict[str, Any], mask: set[str]) -> dict[str, Any]:
    """``fields`` with the values of masked fields replaced (None stays visible as None)."""
    if not mask:
        return fields
    return {k: (MASK if k in mask and v is not None else v) for k, v in fields.items()}
