"""Encodings of stored values shared by the SQLite and PostgreSQL stores.

Every value a source or step produced must be storable and read back equal, so the store never
refuses a message for its content. ``encode_json`` writes plain JSON with orjson (the common path,
at orjson's speed) and falls back, only when orjson refuses a value or would change it, to a
*tagged* document: still valid JSON (text columns stay readable by SQL JSON functions), written
by the standard library, wrapped as ``{"$dovetail:codec": 1, "value": ...}``. Inside it:

- integers of any size and strings with lone surrogates are kept as JSON numbers and ``\\uXXXX``
  escapes (the standard library reads both back exactly);
- ``NaN``, ``Infinity`` and ``-Infinity`` (not JSON), ``bytes``, ``Decimal``, ``datetime``,
  ``date``, ``time`` and ``timedelta`` become tagged nodes ``{"$dovetail:codec": kind, "v": ...}``
  and are read back as the same type and value (a datetime in a ``zoneinfo`` zone keeps its
  zone; one in another kind of time zone is read back with its fixed UTC offset);
- a mapping with non-string keys, or one that has a ``"$dovetail:codec"`` key of its own, becomes
  a tagged list of pairs, so no user value is ever mistaken for a tag;
- tuples are stored as lists, UUIDs as their text and enums as their value (as orjson writes
  them); any other object as its ``str()``.

``decode_json`` reads both forms (and everything stored before the tagged form existed). Values
nested deeper than ``MAX_DEPTH`` raise ``UnstorableValue``.
"""

from __future__ import annotations

import base64
import json
import math
import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from dovetail.store.base import DeadLetter

TAG = "$dovetail:codec"
"""The key marking a tagged document (at the top) and tagged values (inside it)."""

MAX_DEPTH = 1000
"""Deepest nesting the codec stores (the deepest any reader accepts: the file source's
``max_depth`` goes up to 1000)."""

_TAGGED_PREFIX = b'{"' + TAG.encode() + b'":'
_ORJSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATACLASS
)
"""Types orjson would write lossily (datetimes as text, subclasses as their base) are refused,
so they take the tagged path."""

_UNSTORABLE_CHARACTERS = re.compile("[\x00\ud800-\udfff]")
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class UnstorableValue(ValueError):
    """Raised by ``encode_json`` for a value nested deeper than ``MAX_DEPTH`` levels."""


def timestamp(value: float | None) -> datetime | None:
    """A stored epoch time as an aware UTC datetime (``None`` stays ``None``)."""
    return None if value is None else datetime.fromtimestamp(value, UTC)


def epoch(value: datetime | None) -> float | None:
    """An aware datetime as stored epoch seconds (``None`` stays ``None``)."""
    return None if value is None else value.timestamp()


def history_entry(letter: DeadLetter, now: float) -> dict[str, Any]:
    """One failure of a dead letter as kept in its ``history``."""
    return {
        "at": now,
        "step": letter.step,
        "reason": letter.reason,
        "error_class": letter.error_class,
        "attempt": letter.attempt,
        "flow_version": letter.flow_version,
    }


def encode_json(value: Any) -> bytes:
    """``value`` as a JSON document that ``decode_json`` reads back equal (module docstring).

    Never raises for a value's content or type; raises ``UnstorableValue`` only for nesting
    deeper than ``MAX_DEPTH``.
    """
    try:
        data = orjson.dumps(value, option=_ORJSON_OPTIONS)
    except TypeError:  # big integer, lone surrogate, bytes, Decimal, datetime, deep nesting
        return _encode_tagged(value)
    if b"null" in data and orjson.loads(data) != value:  # orjson writes NaN and inf as null
        return _encode_tagged(value)  # (reading back and comparing is faster than a walk)
    if type(value) is dict and TAG in value:
        return _encode_tagged(value)
    return data


def encode_json_text(value: Any) -> str:
    """``encode_json`` as text, for the store's JSON text columns."""
    return encode_json(value).decode()


def decode_json(data: bytes | str) -> Any:
    """Inverse of ``encode_json``; also reads plain JSON stored by earlier releases."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if raw.startswith(_TAGGED_PREFIX):
        document = json.loads(raw)
        if isinstance(document, dict) and set(document) == {TAG, "value"}:
            return _revive(document["value"])
        return document
    return orjson.loads(raw)


def storable_text(text: str) -> str:
    """``text`` as a text column of either store keeps it: a lone surrogate (SQLite and
    PostgreSQL refuse it) and a NUL (PostgreSQL refuses it) become U+FFFD."""
    if text.isprintable():  # the common case: neither a NUL nor a surrogate
        return text
    return _UNSTORABLE_CHARACTERS.sub("\ufffd", text)


def encode_payload(payload: Any) -> bytes:
    """Serialise a payload for storage: JSON for data (``encode_json``), raw bytes as they are."""
    if isinstance(payload, bytes):
        return b"b:" + payload
    return b"j:" + encode_json(payload)


def decode_payload(blob: bytes) -> Any:
    """Inverse of ``encode_payload``."""
    if blob.startswith(b"b:"):
        return blob[2:]
    if blob.startswith(b"j:"):
        return decode_json(blob[2:])
    return decode_json(blob)


def _encode_tagged(value: Any) -> bytes:
    try:
        tree = {TAG: 1, "value": _tagged(value, 0)}
        text = json.dumps(tree, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    except RecursionError:
        raise UnstorableValue("the value is nested too deeply to store") from None
    return text.encode()


def _node(kind: str, value: Any) -> dict[str, Any]:
    return {TAG: kind, "v": value}


def _tagged(value: Any, depth: int) -> Any:
    """``value`` as a tree the standard library writes as strict JSON, tags where needed."""
    if depth > MAX_DEPTH:
        raise UnstorableValue(f"the value is nested deeper than {MAX_DEPTH} levels")
    if value is None or value is True or value is False:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        return _node("float", "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))
    if isinstance(value, Enum):
        return _tagged(value.value, depth + 1)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value) and TAG not in value:
            mapping: dict[str, Any] = {}
            for key, item in value.items():  # loops, not comprehensions: one frame per level
                mapping[str(key)] = _tagged(item, depth + 1)
            return mapping
        pairs: list[list[Any]] = []
        for key, item in value.items():
            pairs.append([_tagged(key, depth + 1), _tagged(item, depth + 1)])
        return _node("dict", pairs)
    if isinstance(value, list | tuple):
        items: list[Any] = []
        for item in value:
            items.append(_tagged(item, depth + 1))
        return items
    return _scalar(value)


def _scalar(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return _node("bytes", base64.b64encode(bytes(value)).decode())
    if isinstance(value, Decimal):
        return _node("decimal", str(value))
    if isinstance(value, datetime):
        if isinstance(value.tzinfo, ZoneInfo) and value.tzinfo.key:  # the zone, not the offset
            return _node("zoned_datetime", [value.isoformat(), value.tzinfo.key, value.fold])
        return _node("datetime", value.isoformat())
    if isinstance(value, date):
        return _node("date", value.isoformat())
    if isinstance(value, time):
        return _node("time", value.isoformat())
    if isinstance(value, timedelta):
        return _node("timedelta", [value.days, value.seconds, value.microseconds])
    return str(value)


def _revive(tree: Any) -> Any:
    if isinstance(tree, list):
        items: list[Any] = []
        for item in tree:
            items.append(_revive(item))
        return items
    if not isinstance(tree, dict):
        return tree
    kind = tree.get(TAG)
    if kind is None or set(tree) != {TAG, "v"}:
        mapping: dict[str, Any] = {}
        for key, item in tree.items():
            mapping[key] = _revive(item)
        return mapping
    value = tree["v"]
    match kind:
        case "float":
            return _NON_FINITE[value]
        case "dict":
            pairs: dict[Any, Any] = {}
            for key, item in value:
                pairs[_revive(key)] = _revive(item)
            return pairs
        case "bytes":
            return base64.b64decode(value)
        case "decimal":
            return Decimal(value)
        case "datetime":
            return datetime.fromisoformat(value)
        case "zoned_datetime":
            text, zone, fold = value
            return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone), fold=fold)
        case "date":
            return date.fromisoformat(value)
        case "time":
            return time.fromisoformat(value)
        case "timedelta":
            days, seconds, microseconds = value
            return timedelta(days=days, seconds=seconds, microseconds=microseconds)
    raise ValueError(f"unknown stored value kind {kind!r}")
