"""Check a reconciliation's field names against the fields the data actually holds.

A key or rule naming a field that neither side has cannot be honoured: pairing on it makes
every record missing, and a tolerance on it is never applied. Such names are configuration
errors, located in the reconciliation file (``path:line:col``) with a did-you-mean taken from
the fields that exist. A side with no records tells nothing about its fields and is not
checked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from difflib import get_close_matches

from dovetail.config.yaml_positions import Located
from dovetail.errors import Problem
from dovetail.reconcile.config import ReconcileConfig

Locate = Callable[[tuple[str | int, ...], str], Problem]
"""Turns a location in the reconciliation file and a message into a ``Problem``."""

SHOWN_FIELDS = 12
"""How many existing field names a message lists at most."""


@dataclass
class SeenFields:
    """The field names read from each side (target names as the target spells them)."""

    source: set[str] = field(default_factory=set)
    target: set[str] = field(default_factory=set)
    source_records: int = 0
    target_records: int = 0


def locator(located: Located | None) -> Locate:
    """Problems located in the reconciliation file, or at ``<options>`` for flags and code."""
    if located is None:
        return lambda _loc, message: Problem("<options>", 1, 1, message)
    # a rule is pointed at by its field name (the key), everything else by its value
    return lambda loc, message: located.problem(
        loc, message, key=len(loc) == 2 and loc[0] == "fields"
    )


def _hint(name: str, candidates: Iterable[str]) -> str:
    close = get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _listing(names: Iterable[str]) -> str:
    ordered = sorted(names)
    shown = ", ".join(ordered[:SHOWN_FIELDS])
    more = len(ordered) - SHOWN_FIELDS
    return shown + (f" and {more} more" if more > 0 else "") if ordered else "none"


def field_problems(config: ReconcileConfig, seen: SeenFields, locate: Locate) -> list[Problem]:
    """Every key, rule, ``ignore`` and ``mask`` entry naming a field the data does not hold.

    Key fields and rule fields must be on both sides (a rule's ``target_field`` names the
    target's field); ``ignore`` and ``mask`` entries must be on at least one side.
    """
    check_source = seen.source_records > 0
    check_target = seen.target_records > 0
    if not (check_source or check_target):
        return []
    renamed = {
        rule.target_field: name
        for name, rule in config.fields.items()
        if rule.target_field is not None
    }
    problems: list[Problem] = []

    def on_both(
        what: str, name: str, loc: tuple[str | int, ...], target_loc: tuple[str | int, ...]
    ) -> None:
        rule = config.fields.get(name)
        target_name = rule.target_field if rule is not None and rule.target_field else name
        in_source = not check_source or name in seen.source
        in_target = not check_target or target_name in seen.target
        if in_source and in_target:
            return
        if not in_source and not in_target:
            problems.append(
                locate(
                    loc,
                    f"{what} {name!r} is in neither the source nor the target"
                    f"{_hint(name, seen.source | seen.target)}; source fields:"
                    f" {_listing(seen.source)}; target fields: {_listing(seen.target)}",
                )
            )
        elif not in_source:
            problems.append(
                locate(
                    loc,
                    f"{what} {name!r} is in the target but not in the source"
                    f"{_hint(name, seen.source)}; source fields: {_listing(seen.source)}",
                )
            )
        else:
            where = target_loc if target_name != name else loc
            label = "target_field" if target_name != name else what
            problems.append(
                locate(
                    where,
                    f"{label} {target_name!r} is in the source but not in the target"
                    f"{_hint(target_name, seen.target)}; target fields:"
                    f" {_listing(seen.target)} (name the target's field with target_field)",
                )
            )

    for index, name in enumerate(config.key):
        on_both("key field", name, ("key", index), ("fields", name, "target_field"))
    for name in config.fields:
        if name not in config.key:
            on_both("field", name, ("fields", name), ("fields", name, "target_field"))
    anywhere = seen.source | {renamed.get(name, name) for name in seen.target}
    for option in ("ignore", "mask"):
        for index, name in enumerate(getattr(config, option)):
            if name not in anywhere and name not in seen.target:
                problems.append(
                    locate(
                        (option, index),
                        f"{option} names {name!r}, a field of neither side"
                        f"{_hint(name, anywhere)}; fields: {_listing(anywhere)}",
                    )
                )
    return problems


def one_sided_fields(config: ReconcileConfig, seen: SeenFields) -> dict[str, list[str]]:
    """Compared fields that only one side holds (each compared with a missing value).

    Empty when a side has no records or ``compare: listed`` (listed fields are checked by
    ``field_problems``).
    """
    if config.compare == "listed" or not (seen.source_records and seen.target_records):
        return {"source_only": [], "target_only": []}
    renamed = {
        rule.target_field: name
        for name, rule in config.fields.items()
        if rule.target_field is not None
    }
    target = {renamed.get(name, name) for name in seen.target}
    skip = {*config.key, *config.ignore}
    return {
        "source_only": sorted(seen.source - target - skip),
        "target_only": sorted(target - seen.source - skip),
    }
