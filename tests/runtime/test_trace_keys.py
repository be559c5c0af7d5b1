"""Business keys read from input messages for ``dovetail trace KEY``."""

from __future__ import annotations

from dovetail.core.ack import Settlement
from dovetail.core.envelope import Envelope
from dovetail.runtime.keys import TraceKeyReader


def _envelope(payload: object, key: str | None = None) -> Envelope:
    headers = {} if key is None else {"idempotency-key": key}
    return Envelope(payload=payload, settlement=Settlement(), headers=headers)


def test_scalar_values_of_each_path_and_the_idempotency_key_are_read() -> None:
    reader = TraceKeyReader(["ref", "customer.id", "total"])
    first = _envelope({"ref": "ORD-1", "customer": {"id": 7}, "total": 9.5}, key="1")
    second = _envelope({"ref": "", "customer": {"id": True}, "total": {"x": 1}})
    third = _envelope(b"raw line", key="3")
    keys = reader.keys_of([first, second, third])
    assert [(k.key, k.message_id) for k in keys] == [
        ("1", first.id),
        ("ORD-1", first.id),
        ("7", first.id),
        ("9.5", first.id),
        ("3", third.id),
    ]


def test_the_input_message_is_read_not_the_mapped_one() -> None:
    envelope = _envelope({"renamed": "X"})
    envelope.original = {"ref": "ORD-9"}
    assert [k.key for k in TraceKeyReader(["ref"]).keys_of([envelope])] == ["ORD-9"]


def test_overlong_values_and_a_value_equal_to_the_key_are_skipped() -> None:
    envelope = _envelope({"ref": "A-1", "note": "x" * 501}, key="A-1")
    assert [k.key for k in TraceKeyReader(["ref", "note"]).keys_of([envelope])] == ["A-1"]
