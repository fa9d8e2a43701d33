"""Checking the provider's webhook signature (pure).

`Webhook-Timestamp: <unix seconds>` and `Webhook-Signature: v1=<hex> [v1=<hex> …]`, each
value an HMAC-SHA256 of `<timestamp>.<raw body>` under one of the provider's secrets
(several while a secret is rotated). A request is genuine when any value matches any of
our WEBHOOK_SECRET list, compared in constant time, and its timestamp is within
TOLERANCE of our clock (an old request replayed whole is refused).
"""

from __future__ import annotations

import hashlib
import hmac
import re

TOLERANCE_SECONDS = 300
_TIMESTAMP = re.compile(r"\d{1,12}")
_VALUE = re.compile(r"v1=([0-9a-f]{64})")


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of `<timestamp>.<body>` under `secret`."""
    message = timestamp.encode("ascii") + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def problem(
    secrets: tuple[str, ...], timestamp: str | None, signatures: str | None, body: bytes, now: float
) -> str | None:
    """Why the request is not genuine, or None when it is."""
    if not secrets:
        return "webhooks are not configured here: set WEBHOOK_SECRET"
    if not timestamp or not _TIMESTAMP.fullmatch(timestamp.strip()):
        return "Webhook-Timestamp must be the unix time in seconds"
    if abs(now - int(timestamp.strip())) > TOLERANCE_SECONDS:
        return f"Webhook-Timestamp is more than {TOLERANCE_SECONDS} s from our clock"
    given = [m[1] for m in (_VALUE.fullmatch(v) for v in (signatures or "").split()) if m]
    if not given:
        return "Webhook-Signature must hold v1=<hex HMAC-SHA256> values"
    expected = [signature(secret, timestamp.strip(), body) for secret in secrets]
    matched = False
    for value in given:  # every pair compared, matched or not: the time says nothing
        for wanted in expected:
            matched |= hmac.compare_digest(value, wanted)
    return None if matched else "Webhook-Signature does not match"
