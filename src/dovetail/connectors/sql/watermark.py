"""The ``sql`` source's watermark: where reading resumes, how it is saved, the query it drives.

A ``Position`` is the watermark value of the last row read (and its tie-breaker key, when one is
configured). The next read takes the rows after it, in watermark order::

    with a key:    WHERE wm > :w OR (wm = :w AND key > :k)  ORDER BY wm, key  LIMIT n
    without one:   WHERE wm > :w                            ORDER BY wm       LIMIT n

An *inclusive* position (``wm >= :w``) starts from ``watermark.initial`` and resumes a checkpoint
written under another key setting. Rows whose watermark is null are never read.

Watermark values are saved in the store's checkpoint as JSON with their type (``encode_value``),
so a timestamp comes back as a timestamp and binds to the query as one.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

Quote = Callable[[str], str]
"""Quotes an identifier for the database's dialect when it needs quoting."""
Escape = Callable[[str], str]
"""Protects user SQL text from the bind-parameter syntax of the layer that runs it."""


@dataclass(frozen=True, slots=True)
class Position:
    """Read rows after ``watermark`` (and ``key``); ``inclusive``: from ``watermark`` on."""

    watermark: Any
    key: Any = None
    inclusive: bool = False


def encode_value(value: Any) -> dict[str, Any]:
    """``value`` as JSON-safe data tagged with its type; ``TypeError`` for other types."""
    if isinstance(value, bool):
        return {"type": "bool", "value": value}
    if isinstance(value, int):
        return {"type": "int", "value": value}
    if isinstance(value, float):
        return {"type": "float", "value": repr(value)}
    if isinstance(value, Decimal):
        return {"type": "decimal", "value": str(value)}
    if isinstance(value, str):
        return {"type": "str", "value": value}
    if isinstance(value, datetime):
        return {"type": "datetime", "value": value.isoformat()}
    if isinstance(value, date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, time):
        return {"type": "time", "value": value.isoformat()}
    if isinstance(value, UUID):
        return {"type": "uuid", "value": str(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"type": "bytes", "value": base64.b64encode(bytes(value)).decode()}
    raise TypeError(f"a {type(value).__name__} value cannot be a watermark or key")


def decode_value(data: dict[str, Any]) -> Any:
    """The value ``encode_value`` saved; ``ValueError`` for data it did not write."""
    kind, value = data.get("type"), data.get("value")
    decoders: dict[str, Callable[[Any], Any]] = {
        "bool": bool,
        "int": int,
        "float": float,
        "decimal": Decimal,
        "str": str,
        "datetime": datetime.fromisoformat,
        "date": date.fromisoformat,
        "time": time.fromisoformat,
        "uuid": UUID,
        "bytes": base64.b64decode,
    }
    decoder = decoders.get(str(kind))
    if decoder is None:
        raise ValueError(f"unknown watermark type {kind!r}")
    return decoder(value)


def coerce_like(value: Any, sample: Any) -> Any:
    """``value`` (``watermark.initial`` as written in YAML) converted to the type of ``sample``
    (a watermark value the database returned), so that it binds as the column's type.

    Raises ``ValueError`` or ``TypeError`` when it cannot be converted.
    """
    if isinstance(sample, bool):
        return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true")
    if isinstance(sample, int):
        return value if isinstance(value, int) else int(str(value).strip())
    if isinstance(sample, float):
        return float(value)
    if isinstance(sample, Decimal):
        return Decimal(str(value).strip())
    if isinstance(sample, datetime):
        moment = _to_datetime(value)
        if sample.tzinfo is not None and moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        if sample.tzinfo is None and moment.tzinfo is not None:
            return moment.astimezone(UTC).replace(tzinfo=None)
        return moment
    if isinstance(sample, date):
        if isinstance(value, datetime):
            return value.date()
        return value if isinstance(value, date) else date.fromisoformat(str(value).strip())
    if isinstance(sample, time):
        return value if isinstance(value, time) else time.fromisoformat(str(value).strip())
    if isinstance(sample, UUID):
        return value if isinstance(value, UUID) else UUID(str(value))
    if isinstance(sample, str):
        return _text_like(value, sample)
    return value


def _text_like(value: Any, sample: str) -> str:
    """``value`` as text; a date-time in the layout of ``sample`` when that is an ISO date-time
    (SQLite keeps them as text, compared character by character)."""
    if len(sample) >= 19 and sample[10] in "T " and sample[4] == sample[7] == "-":
        try:
            datetime.fromisoformat(sample)
            moment = _to_datetime(value)
        except ValueError:
            return str(value)
        if moment.tzinfo is not None and not _has_offset(sample):
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        return moment.isoformat(sample[10])
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _has_offset(text: str) -> bool:
    return text.endswith("Z") or text[19:].lstrip("0123456789.")[:1] in ("+", "-")


def _to_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    return datetime.fromisoformat(str(value).strip())


@dataclass(frozen=True, slots=True)
class WatermarkQuery:
    """Builds the SQL of the source's reads for one dialect.

    ``table``/``columns`` select from a table (``columns`` empty: every column); otherwise
    ``query`` is wrapped as a derived table. ``escape`` is applied to the user's query text
    only (colons are bind markers for SQLAlchemy's ``text()``); bind names are ``dovetail_*``.
    """

    quote: Quote
    escape: Escape
    column: str
    key: str | None
    query: str | None = None
    table: str | None = None
    columns: tuple[str, ...] = ()

    def select(self, position: Position | None, limit: int | None) -> tuple[str, dict[str, Any]]:
        """The next rows after ``position`` (all rows when ``None``), at most ``limit``."""
        wm = self._ref(self.column)
        params: dict[str, Any] = {}
        if position is None:
            condition = f"{wm} IS NOT NULL"
        elif position.inclusive:
            condition = f"{wm} >= :dovetail_wm"
            params["dovetail_wm"] = position.watermark
        elif self.key is not None and position.key is not None:
            key = self._ref(self.key)
            condition = f"({wm} > :dovetail_wm OR ({wm} = :dovetail_wm2 AND {key} > :dovetail_key))"
            params.update(
                dovetail_wm=position.watermark,
                dovetail_wm2=position.watermark,
                dovetail_key=position.key,
            )
        else:
            condition = f"{wm} > :dovetail_wm"
            params["dovetail_wm"] = position.watermark
        order = wm if self.key is None else f"{wm}, {self._ref(self.key)}"
        sql = f"{self._from()} WHERE {condition} ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return sql, params

    def tie_group(self, watermark: Any) -> tuple[str, dict[str, Any]]:
        """Every row whose watermark equals ``watermark`` (a group too big for one batch)."""
        wm = self._ref(self.column)
        return f"{self._from()} WHERE {wm} = :dovetail_wm", {"dovetail_wm": watermark}

    def probe(self) -> tuple[str, dict[str, Any]]:
        """No row, only the columns the reads will return."""
        return f"{self._from()} WHERE 1 = 0", {}

    def sample(self) -> tuple[str, dict[str, Any]]:
        """One non-null watermark value, to learn the column's type."""
        wm = self._ref(self.column)
        return f"{self._from()} WHERE {wm} IS NOT NULL LIMIT 1", {}

    def _from(self) -> str:
        if self.table is not None:
            names = ", ".join(self.quote(name) for name in self.columns) or "*"
            table = ".".join(self.quote(part) for part in self.table.split("."))
            return f"SELECT {names} FROM {table}"
        assert self.query is not None
        return f"SELECT * FROM ({self.escape(self.query)}) AS dovetail_rows"

    def _ref(self, name: str) -> str:
        return self.quote(name)
