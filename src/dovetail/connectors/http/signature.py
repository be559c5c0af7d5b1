"""HMAC signatures of webhook requests, stale-timestamp checks and replay protection.

The sender computes ``HMAC(secret, "{timestamp}.{raw body}")`` and sends it as
``sha256=<hex>`` (the bare hex is accepted too) with the Unix timestamp in its own header.
A request is accepted when the signature matches (constant-time comparison), the timestamp is
within ``tolerance`` of now, and the same signature was not accepted before inside that window.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import re
import time
from collections.abc import Callable
from typing import Literal

from pydantic import SecretStr

from dovetail.config.types import Duration
from dovetail.plugins.spec import ComponentConfig

Algorithm = Literal["sha256", "sha384", "sha512"]

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
"""Unix seconds in ASCII digits: ``str.isdigit`` would also take ``²`` or ``٣``."""


class SignatureConfig(ComponentConfig):
    secret: SecretStr
    """The shared secret; use `${secret:NAME}`."""
    header: str = "x-signature"
    """Request header with the signature: `sha256=<hex>` or the bare hex."""
    timestamp_header: str = "x-timestamp"
    """Request header with the Unix time (seconds) the request was signed at."""
    tolerance: Duration = 300.0
    """How far the timestamp may be from now, either way; older requests are rejected as stale."""
    algorithm: Algorithm = "sha256"
    """The HMAC hash function."""


class SignatureRejected(Exception):
    """A request failed verification; ``status`` is the HTTP answer (401, or 409 for a replay)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def compute_signature(secret: bytes, timestamp: str, body: bytes, algorithm: Algorithm) -> str:
    """The hex HMAC of ``"{timestamp}.{body}"``."""
    message = timestamp.encode("ascii") + b"." + body
    return hmac.new(secret, message, getattr(hashlib, algorithm)).hexdigest()


def sign(secret: bytes, timestamp: str, body: bytes, algorithm: Algorithm = "sha256") -> str:
    """The signature header value a sender puts on a request: ``sha256=<hex>``."""
    return f"{algorithm}={compute_signature(secret, timestamp, body, algorithm)}"


class SignatureVerifier:
    """Checks signature and timestamp, and remembers accepted signatures to refuse replays.

    ``verify`` raises ``SignatureRejected`` or returns the digest, which the caller
    ``remember``s once the request is durably accepted (or ``forget``s when it fails later,
    so the sender's retry is not mistaken for a replay).
    """

    def __init__(
        self,
        secret: bytes,
        *,
        algorithm: Algorithm = "sha256",
        tolerance: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self._algorithm = algorithm
        self._tolerance = tolerance
        self._clock = clock
        self._seen: set[str] = set()
        self._expiry: list[tuple[float, str]] = []

    @classmethod
    def from_config(cls, config: SignatureConfig) -> SignatureVerifier:
        """A verifier for a source's ``signature`` block."""
        return cls(
            config.secret.get_secret_value().encode(),
            algorithm=config.algorithm,
            tolerance=config.tolerance,
        )

    def check_headers(self, signature: str | None, timestamp: str | None) -> int:
        """What can be checked before the body is read: both headers present, the timestamp
        well-formed and fresh; returns the timestamp. Raises ``SignatureRejected`` (401)."""
        if not signature:
            raise SignatureRejected(401, "missing signature")
        stamp = parse_timestamp(timestamp)
        if abs(self._clock() - stamp) > self._tolerance:
            raise SignatureRejected(401, "stale timestamp")
        return stamp

    def check(self, signature: str | None, timestamp: str | None, body: bytes) -> str:
        """Verify headers, freshness and signature only; returns the matching digest."""
        self.check_headers(signature, timestamp)
        signed = (timestamp or "").strip(" \t")  # as sent: ASCII digits, leading zeros kept
        expected = compute_signature(self._secret, signed, body, self._algorithm)
        for candidate in _candidates(signature or "", self._algorithm):
            if hmac.compare_digest(candidate.encode(), expected.encode()):
                return expected
        raise SignatureRejected(401, "invalid signature")

    def verify(self, signature: str | None, timestamp: str | None, body: bytes) -> str:
        """``check``, then claim the digest; a digest already claimed is a replay (409)."""
        digest = self.check(signature, timestamp, body)
        self._prune()
        if digest in self._seen:
            raise SignatureRejected(409, "replayed request: this signature was already accepted")
        stamp = parse_timestamp(timestamp)
        self._seen.add(digest)
        heapq.heappush(self._expiry, (stamp + self._tolerance, digest))
        return digest

    def forget(self, digest: str) -> None:
        """Release a claimed digest (the request was not accepted after all)."""
        self._seen.discard(digest)

    def _prune(self) -> None:
        now = self._clock()
        while self._expiry and self._expiry[0][0] < now:
            _, digest = heapq.heappop(self._expiry)
            self._seen.discard(digest)


def parse_timestamp(value: str | None) -> int:
    """A signature timestamp header as Unix seconds: 1 to 12 ASCII digits, surrounding spaces
    allowed; raises ``SignatureRejected`` (401, "missing timestamp" or "invalid timestamp")."""
    if not value:
        raise SignatureRejected(401, "missing timestamp")
    stamp = value.strip(" \t")
    if not _TIMESTAMP.fullmatch(stamp):
        raise SignatureRejected(401, "invalid timestamp: expected Unix seconds in ASCII digits")
    return int(stamp)


def _candidates(header: str, algorithm: str) -> list[str]:
    found = []
    for part in header.replace(",", " ").split():
        name, sep, value = part.partition("=")
        if sep:
            if name.strip().lower() == algorithm:
                found.append(value.strip().lower())
        else:
            found.append(part.strip().lower())
    return found
