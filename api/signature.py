"""Stripe's webhook signature: `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`,
each v1 an HMAC-SHA256 of `"{t}.{raw body}"` under the endpoint's secret."""

from __future__ import annotations

import hashlib
import hmac
import time

TOLERANCE = 300  # seconds between Stripe signing and our check, either way


class SignatureError(ValueError):
    pass


def verify(header: str | None, body: bytes, secret: str, now: float | None = None) -> None:
    """Raise `SignatureError` unless one v1 signature matches and the timestamp is fresh."""
    if not header:
        raise SignatureError("missing Stripe-Signature header")
    pairs = [part.split("=", 1) for part in header.split(",") if "=" in part]
    stamps = [value for key, value in pairs if key.strip() == "t"]
    signatures = [value.strip() for key, value in pairs if key.strip() == "v1"]
    if len(stamps) != 1 or not stamps[0].strip().isdigit() or not signatures:
        raise SignatureError("malformed Stripe-Signature header")
    stamp = stamps[0].strip()
    expected = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    # Every candidate is compared, in constant time, whatever matched before.
    matched = [hmac.compare_digest(expected, candidate) for candidate in signatures]
    if not any(matched):
        raise SignatureError("no v1 signature matches")
    if abs((time.time() if now is None else now) - int(stamp)) > TOLERANCE:
        raise SignatureError(f"timestamp outside the {TOLERANCE} s tolerance")


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """A valid header, as Stripe would send it (for tests and local tooling)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"
