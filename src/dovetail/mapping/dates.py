"""Reading and writing dates for mapping transforms: ISO-8601 and common spellings.

``parse_date`` reads ISO-8601 (date or date-time, ``Z`` allowed), RFC 2822 and a few
unambiguous forms; ``date_formatter`` compiles a strftime format once, with a fast path for
numeric directives (``strftime`` itself costs microseconds per call). Errors are plain
``ValueError``; the transform layer turns them into its own errors.
"""

from __future__ import annotations

import email.utils
import operator
import re
from collections.abc import Callable
from datetime import date, datetime

_DATE_FORMATS = (
    "%d.%m.%Y",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%Y/%m/%d",
    "%Y/%m/%d %H:%M:%S",
    "%d-%b-%Y",
    "%d %b %Y",
    "%d %B %Y",
    "%b %d, %Y",
    "%B %d, %Y",
)
"""Unambiguous spellings tried after ISO-8601; ``01/02/2024`` (US or European?) needs IN>OUT."""


def parse_date(text: str) -> datetime | date:
    """Parse ISO-8601 (date or date-time, ``Z`` allowed), RFC 2822 or a common unambiguous form.

    Returns a ``date`` for a date-only ISO value, otherwise a ``datetime``. Raises
    ``ValueError`` when nothing matches.
    """
    text = text.strip()
    try:
        return date.fromisoformat(text) if len(text) in (8, 10) else datetime.fromisoformat(text)
    except ValueError:
        pass
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    try:
        return email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        raise ValueError("date: value is not a recognised date") from None


_FAST_DIRECTIVES = {
    "Y": ("%d", "year"),
    "m": ("%02d", "month"),
    "d": ("%02d", "day"),
    "H": ("%02d", "hour"),
    "M": ("%02d", "minute"),
    "S": ("%02d", "second"),
    "f": ("%06d", "microsecond"),
}


def date_formatter(fmt: str) -> Callable[[datetime | date], str]:
    """A formatter for ``fmt``: ``iso``, a fast path for numeric directives, else strftime."""
    if fmt == "iso":
        return lambda moment: moment.isoformat()
    pieces: list[str] = []
    fields: list[str] = []
    for part in re.split(r"(%.)", fmt):
        if len(part) == 2 and part[0] == "%" and part[1] in _FAST_DIRECTIVES:
            template, name = _FAST_DIRECTIVES[part[1]]
            pieces.append(template)
            fields.append(name)
        elif len(part) == 2 and part[0] == "%" and part != "%%":
            return lambda moment: moment.strftime(fmt)
        else:
            pieces.append(part if part == "%%" else part.replace("%", "%%"))
    template = "".join(pieces)
    if not fields:
        return lambda moment: template % ()
    read = operator.attrgetter(*fields)
    if set(fields) <= {"year", "month", "day"}:  # a date has these: no conversion needed
        if len(fields) == 1:
            return lambda moment: template % (read(moment),)
        return lambda moment: template % read(moment)
    if len(fields) == 1:
        return lambda moment: template % (read(_as_datetime(moment)),)
    return lambda moment: template % read(_as_datetime(moment))


def _as_datetime(moment: datetime | date) -> datetime:
    if isinstance(moment, datetime):
        return moment
    return datetime(moment.year, moment.month, moment.day)


def check_date_format(fmt: str, *, parse: bool) -> None:
    """Check a format before use; ``parse`` also checks strptime can read what it writes.

    ``iso`` is accepted as an output format. Raises ``ValueError`` explaining the problem.
    """
    if fmt == "iso" and not parse:
        return
    if "%" not in fmt:
        raise ValueError(f"date format {fmt!r} has no %-directives (write e.g. %Y-%m-%d, or iso)")
    sample = datetime(2001, 2, 3, 4, 5, 6)
    try:
        text = sample.strftime(fmt)
        if parse:
            datetime.strptime(text, fmt)
    except ValueError as exc:
        raise ValueError(f"date format {fmt!r} is not usable: {exc}") from None
