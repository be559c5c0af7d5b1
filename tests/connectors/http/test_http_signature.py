"""HMAC signature verification: properties, staleness and replay protection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dovetail.connectors.http.signature import (
    SignatureRejected,
    SignatureVerifier,
    compute_signature,
    sign,
)

SECRET = b"whsec-test"
NOW = 1_700_000_000


def verifier(now: float = NOW, tolerance: float = 300) -> SignatureVerifier:
    return SignatureVerifier(SECRET, tolerance=tolerance, clock=lambda: now)


@given(
    secret=st.binary(min_size=1, max_size=64),
    body=st.binary(max_size=512),
    timestamp=st.integers(min_value=0, max_value=10**11),
)
def test_sign_then_verify_passes(secret: bytes, body: bytes, timestamp: int) -> None:
    checker = SignatureVerifier(secret, clock=lambda: float(timestamp))
    stamp = str(timestamp)
    assert checker.check(sign(secret, stamp, body), stamp, body)
    bare = compute_signature(secret, stamp, body, "sha256")
    assert checker.check(bare, stamp, body) == bare


@given(
    secret=st.binary(min_size=1, max_size=64),
    body=st.binary(min_size=1, max_size=512),
    timestamp=st.integers(min_value=0, max_value=10**11),
    data=st.data(),
)
def test_any_single_byte_change_fails(
    secret: bytes, body: bytes, timestamp: int, data: st.DataObject
) -> None:
    checker = SignatureVerifier(secret, clock=lambda: float(timestamp))
    stamp = str(timestamp)
    signature = sign(secret, stamp, body)
    index = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    flip = data.draw(st.integers(min_value=1, max_value=255))
    tampered = bytearray(body)
    tampered[index] ^= flip
    with pytest.raises(SignatureRejected) as caught:
        checker.check(signature, stamp, bytes(tampered))
    assert caught.value.status == 401
    assert caught.value.reason == "invalid signature"


@given(secret=st.binary(min_size=1, max_size=64), body=st.binary(max_size=256))
def test_a_signature_of_another_timestamp_fails(secret: bytes, body: bytes) -> None:
    checker = SignatureVerifier(secret, clock=lambda: float(NOW))
    with pytest.raises(SignatureRejected, match="invalid signature"):
        checker.check(sign(secret, str(NOW - 1), body), str(NOW), body)


@pytest.mark.parametrize(
    ("signature", "timestamp", "reason"),
    [
        (None, str(NOW), "missing signature"),
        ("sha256=abc", None, "missing timestamp"),
        ("sha256=abc", "yesterday", "invalid timestamp"),
        ("sha256=abc", str(NOW), "invalid signature"),
        ("sha512=" + compute_signature(SECRET, str(NOW), b"{}", "sha256"), str(NOW), "invalid"),
    ],
)
def test_missing_or_wrong_parts_are_401(
    signature: str | None, timestamp: str | None, reason: str
) -> None:
    with pytest.raises(SignatureRejected, match=reason) as caught:
        verifier().check(signature, timestamp, b"{}")
    assert caught.value.status == 401


@pytest.mark.parametrize("offset", [-301, 301, -10_000])
def test_timestamps_outside_the_tolerance_are_stale(offset: int) -> None:
    stamp = str(NOW + offset)
    with pytest.raises(SignatureRejected, match="stale timestamp"):
        verifier().check(sign(SECRET, stamp, b"{}"), stamp, b"{}")


def test_a_rotated_header_with_several_signatures_passes_when_one_matches() -> None:
    stamp = str(NOW)
    header = f"sha256=00ff, {sign(SECRET, stamp, b'x')}"
    assert verifier().check(header, stamp, b"x")


def test_replay_within_the_window_is_409_and_forgotten_digests_may_return() -> None:
    clock = [float(NOW)]
    checker = SignatureVerifier(SECRET, tolerance=300, clock=lambda: clock[0])
    stamp = str(NOW)
    signature = sign(SECRET, stamp, b"{}")
    digest = checker.verify(signature, stamp, b"{}")
    with pytest.raises(SignatureRejected) as caught:
        checker.verify(signature, stamp, b"{}")
    assert caught.value.status == 409
    checker.forget(digest)
    assert checker.verify(signature, stamp, b"{}") == digest
    clock[0] = NOW + 301.0
    with pytest.raises(SignatureRejected, match="stale timestamp"):
        checker.verify(signature, stamp, b"{}")
