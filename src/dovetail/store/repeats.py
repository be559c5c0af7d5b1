"""Repeated dead letters: one open entry per idempotency key, flow, step and reason.

Dropping the same file twice fails each bad record twice. The second failure carries no news,
so instead of a second entry it is recorded on the first: ``repeats`` grows, ``last_failed_at``
moves on and the history gains a line naming the repeating message. Both stores plan the
batch's new dead letters with ``fold_repeats`` inside their settlement transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dovetail.store.base import DeadLetter, JournalEvent
from dovetail.store.codec import decode_json, history_entry

Signature = tuple[str, str, str, str]
"""What makes two dead letters the same failure: flow, idempotency key, step, reason."""

FIND_OPEN = (
    "SELECT id, flow, idempotency_key, step, reason, history FROM dovetail_dead_letters"
    " WHERE status = 'open' AND flow = ? AND idempotency_key IN ({marks}) ORDER BY id"
)
"""Open entries of a flow with one of the given keys (``?`` placeholders; ``{marks}``)."""

REPEAT = (
    "UPDATE dovetail_dead_letters SET repeats = repeats + ?, last_failed_at = ?, history = ?"
    " WHERE id = ?"
)
"""Record repeats on an open entry: how many, when last, the history with their lines."""


@dataclass(slots=True)
class OpenEntry:
    """An open dead letter that new failures may repeat."""

    id: int
    history: list[dict[str, Any]]
    added: int = 0


@dataclass(slots=True)
class NewEntry:
    """A dead letter to insert, with the repeats of it found later in the same batch."""

    letter: DeadLetter
    history: list[dict[str, Any]]
    repeats: int = 0


@dataclass(slots=True)
class Plan:
    """How a batch's new dead letters are stored: inserted, or folded into an entry."""

    inserts: list[NewEntry] = field(default_factory=list)
    repeated: list[OpenEntry] = field(default_factory=list)
    """Stored open entries that gained repeats (``added``), with their new history."""
    targets: list[tuple[str, int]] = field(default_factory=list)
    """Per letter in order: ``("new", index into inserts)`` or ``("open", entry id)``."""


def signature(letter: DeadLetter) -> Signature | None:
    """The letter's repeat signature; ``None`` without an idempotency key (never folded)."""
    if letter.idempotency_key is None:
        return None
    return (letter.flow, letter.idempotency_key, letter.step, letter.reason)


def keys_by_flow(letters: list[DeadLetter]) -> dict[str, list[str]]:
    """The distinct idempotency keys of ``letters`` per flow: what to look up open entries by."""
    found: dict[str, dict[str, None]] = {}
    for letter in letters:
        if letter.idempotency_key is not None:
            found.setdefault(letter.flow, {})[letter.idempotency_key] = None
    return {flow: list(keys) for flow, keys in found.items()}


def open_entries(rows: list[Any]) -> dict[Signature, OpenEntry]:
    """Rows of ``FIND_OPEN`` by signature (the oldest entry wins when several match)."""
    entries: dict[Signature, OpenEntry] = {}
    for entry_id, flow, key, step, reason, history in rows:
        entries.setdefault(
            (flow, key, step, reason), OpenEntry(int(entry_id), list(decode_json(history)))
        )
    return entries


def repeat_entry(letter: DeadLetter, now: float) -> dict[str, Any]:
    """The history line of a repeat: the failure and the message that repeated it."""
    return history_entry(letter, now) | {"repeat": True, "message_id": letter.message_id}


def fold_repeats(letters: list[DeadLetter], stored: dict[Signature, OpenEntry], now: float) -> Plan:
    """Plan the new ``letters``: each either repeats an open entry in ``stored`` or one
    inserted earlier in the batch, or is inserted (first history line: its own failure)."""
    plan = Plan()
    first_in_batch: dict[Signature, int] = {}
    for letter in letters:
        sig = signature(letter)
        entry = None if sig is None else stored.get(sig)
        if entry is not None:
            if entry.added == 0:
                plan.repeated.append(entry)
            entry.added += 1
            entry.history.append(repeat_entry(letter, now))
            plan.targets.append(("open", entry.id))
            continue
        index = None if sig is None else first_in_batch.get(sig)
        if index is not None:
            new = plan.inserts[index]
            new.repeats += 1
            new.history.append(repeat_entry(letter, now))
            plan.targets.append(("new", index))
            continue
        if sig is not None:
            first_in_batch[sig] = len(plan.inserts)
        plan.targets.append(("new", len(plan.inserts)))
        plan.inserts.append(NewEntry(letter, [*letter.history, history_entry(letter, now)]))
    return plan


def entries_of(plan: Plan, inserted: list[int]) -> list[tuple[int, bool]]:
    """Per planned letter: the id of its entry and whether it was recorded as a repeat."""
    seen: set[int] = set()
    found: list[tuple[int, bool]] = []
    for kind, ref in plan.targets:
        if kind == "open":
            found.append((ref, True))
        else:
            found.append((inserted[ref], ref in seen))
            seen.add(ref)
    return found


def labelled_details(
    journal: list[JournalEvent], letters: list[DeadLetter], entries: list[tuple[int, bool]]
) -> dict[int, dict[str, Any]]:
    """The details of the batch's ``dead_lettered`` events (by index in ``journal``) with the
    id of the entry each message went to (``dead_letter``) and ``repeat`` when it was folded."""
    by_message = {letter.message_id: entry for letter, entry in zip(letters, entries, strict=True)}
    details: dict[int, dict[str, Any]] = {}
    for index, event in enumerate(journal):
        entry = by_message.get(event.message_id) if event.event == "dead_lettered" else None
        if entry is not None:
            label: dict[str, Any] = {"dead_letter": entry[0]}
            if entry[1]:
                label["repeat"] = True
            details[index] = (event.detail or {}) | label
    return details
