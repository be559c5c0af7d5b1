"""The assertion kinds of a test case's ``expect:``, one function each.

Every check reads a ``CaseOutcome`` (the flow, the case, what the run produced) and returns
the failures it found, as lines a person can act on. ``CHECKS`` lists them in the order their
failures are shown; a new kind of expectation is one more function in that tuple.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from dovetail.config.model import Flow
from dovetail.runtime.runner import RunSummary
from dovetail.store.base import DeadLetter
from dovetail.testing.cases import ExpectedDeadLetter, FlowCase
from dovetail.testing.golden import check_golden
from dovetail.testing.partner_run import PartnerStats


@dataclass
class CaseOutcome:
    """What one case's run produced, as the checks see it."""

    flow: Flow
    case: FlowCase
    summary: RunSummary
    delivered: dict[str, list[Any]]
    dead_letters: list[DeadLetter]
    partner: PartnerStats | None = None
    update_golden: bool = False
    updated: list[Path] = field(default_factory=list)
    """Golden files rewritten by this case (``update_golden``)."""


Check = Callable[[CaseOutcome], list[str]]


def normal(value: Any) -> Any:
    """``value`` as plain JSON data (dates as text), for comparisons."""
    return orjson.loads(orjson.dumps(value, default=str))


def check_delivered(outcome: CaseOutcome) -> list[str]:
    """``delivered``: exact payloads per sink, or one list (the partner's or the only sink's)."""
    expected = outcome.case.spec.expect.delivered
    if expected is None:
        return []
    if isinstance(expected, list):
        if outcome.partner is not None:
            got = normal(outcome.partner.accepted)
            want = normal(expected)
            return [] if got == want else [difference("partner", want, got)]
        if len(outcome.delivered) != 1:
            return ["'delivered' as a list needs a partner: or a flow with a single sink"]
        expected = {next(iter(outcome.delivered)): expected}
    failures: list[str] = []
    for sink, payloads in expected.items():
        if sink not in outcome.delivered:
            failures.append(f"expected deliveries to unknown sink {sink!r}")
            continue
        got = normal(outcome.delivered[sink])
        want = normal(payloads)
        if got != want:
            failures.append(difference(sink, want, got))
    return failures


def check_delivered_count(outcome: CaseOutcome) -> list[str]:
    """``delivered_count``: how many messages each sink received."""
    failures: list[str] = []
    for sink, count in (outcome.case.spec.expect.delivered_count or {}).items():
        got = len(outcome.delivered.get(sink, []))
        if got != count:
            failures.append(f"{sink}: expected {count} delivered, got {got}")
    return failures


def check_dead_letters(outcome: CaseOutcome) -> list[str]:
    """``dead_letters``: one to one, by step, reason fragment and input index."""
    expected = outcome.case.spec.expect.dead_letters
    if expected is None:
        return []
    failures: list[str] = []
    remaining = list(outcome.dead_letters)
    for want in expected:
        match = next((letter for letter in remaining if _matches(want, letter)), None)
        if match is None:
            failures.append(f"expected a dead letter ({_describe(want)})")
        else:
            remaining.remove(match)
    for extra in remaining:
        where = _input_index(extra)
        shown = f" (input {where})" if where is not None else ""
        failures.append(f"unexpected dead letter at {extra.step}{shown}: {extra.reason}")
    return failures


def check_filtered(outcome: CaseOutcome) -> list[str]:
    """``filtered``: how many messages were filtered out."""
    want = outcome.case.spec.expect.filtered
    got = outcome.summary.filtered
    return [] if want is None or got == want else [f"expected {want} filtered, got {got}"]


def check_retries(outcome: CaseOutcome) -> list[str]:
    """``retries``: transient failures retried during the run."""
    want = outcome.case.spec.expect.retries
    got = outcome.summary.retries
    return [] if want is None or got == want else [f"expected {want} retries, got {got}"]


def check_partner(outcome: CaseOutcome) -> list[str]:
    """``partner_requests`` and ``duplicates``: what the partner saw."""
    expect = outcome.case.spec.expect
    if expect.partner_requests is None and expect.duplicates is None:
        return []
    stats = outcome.partner
    if stats is None:
        return ["'partner_requests' and 'duplicates' need a partner: section"]
    failures: list[str] = []
    if expect.partner_requests is not None and stats.requests != expect.partner_requests:
        answers = ", ".join(str(s) if s is not None else "no answer" for s in stats.statuses)
        failures.append(
            f"expected {expect.partner_requests} partner requests, got {stats.requests}"
            f" (answered: {answers or 'none'})"
        )
    if expect.duplicates is not None and stats.duplicates != expect.duplicates:
        failures.append(f"expected {expect.duplicates} duplicates, got {stats.duplicates}")
    return failures


def check_golden_file(outcome: CaseOutcome) -> list[str]:
    """``golden: true`` (or an existing golden file): all sink output equals the file."""
    case = outcome.case
    path = case.golden_path
    if case.spec.expect.golden is False or (not case.spec.expect.golden and not path.is_file()):
        return []
    shown = str(path.relative_to(case.path.parents[2])) if len(case.path.parents) > 2 else None
    verdict = check_golden(path, outcome.delivered, update=outcome.update_golden, shown=shown)
    if verdict.updated is not None:
        outcome.updated.append(verdict.updated)
    return verdict.failures


CHECKS: tuple[Check, ...] = (
    check_delivered,
    check_delivered_count,
    check_dead_letters,
    check_filtered,
    check_retries,
    check_partner,
    check_golden_file,
)
"""Every assertion kind, in the order failures are reported."""


def evaluate(outcome: CaseOutcome, checks: tuple[Check, ...] = CHECKS) -> list[str]:
    """The failures of every check, in order."""
    return [failure for check in checks for failure in check(outcome)]


def difference(sink: str, want: list[Any], got: list[Any]) -> str:
    """Where two payload lists first differ, by field names (no values: they may be personal)."""
    if len(want) != len(got):
        return f"{sink}: expected {len(want)} messages, got {len(got)}"
    for index, (w, g) in enumerate(zip(want, got, strict=True)):
        if w != g:
            if isinstance(w, dict) and isinstance(g, dict):
                keys = sorted({k for k in w.keys() | g.keys() if w.get(k) != g.get(k)})
                return f"{sink}[{index}]: fields differ: {', '.join(keys)}"
            return f"{sink}[{index}]: payload differs"
    return f"{sink}: payloads differ"


def _input_index(letter: DeadLetter) -> int | None:
    position = letter.source_position or {}
    offset = position.get("offset") if position.get("kind") == "list" else None
    return offset if isinstance(offset, int) else None


def _matches(want: ExpectedDeadLetter, letter: DeadLetter) -> bool:
    return (
        (want.step is None or letter.step == want.step)
        and (want.reason is None or want.reason in letter.reason)
        and (want.input is None or _input_index(letter) == want.input)
    )


def _describe(want: ExpectedDeadLetter) -> str:
    parts = [f"step={want.step}", f"reason~{want.reason!r}"]
    if want.input is not None:
        parts.append(f"input={want.input}")
    return ", ".join(parts)
