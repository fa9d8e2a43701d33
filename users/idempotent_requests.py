"""Idempotent requests: a repeated Idempotency-Key gets the first request's response.

Follows the IETF Idempotency-Key draft and Stripe's behaviour: the first request's
status and body are stored with a fingerprint of the request; a repeat with the
same body replays them, one with another body is refused (422), one arriving while
the first is still running gets 409. The claim is committed before the work starts,
so a concurrent duplicate sees it; the result is stored in the same transaction as
the work, so a stored response always matches what was committed. A request that
outlives IDEMPOTENCY_STALE_AFTER may find its claim taken over by a retry: it then
rolls its work back and answers 409, so only the owner of the key commits anything.

A streamed body (an import) is fingerprinted as it is read: its claim holds a pending
fingerprint, replaced by the whole request's when the response is stored; a repeat of
a finished key reads its own body through before comparing (StreamedFingerprint).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from db.transactions import transaction
from errors import IdempotencyKeyInProgress, IdempotencyKeyReused, IdempotencyKeyTakenOver
from repositories import idempotency_keys

log = logging.getLogger(__name__)

CLEANUP_BATCH = 5_000


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: Any
    replayed: bool


@dataclass(frozen=True)
class StreamedFingerprint:
    """The fingerprint of a request whose body is known only once read in full.

    `pending` marks the claim while the work runs; `final()` reads (and digests) what
    is left of the body and returns the fingerprint of the whole request.
    """

    pending: str
    final: Callable[[], str]


def fingerprint(method: str, path: str, body: Any) -> str:
    """A digest of what makes two requests the same request."""
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def run_once(
    pool: ConnectionPool,
    scope: str,
    key: str,
    request_fingerprint: str | StreamedFingerprint,
    work: Callable[[psycopg.Connection], tuple[int, Any]],
    stale_after: timedelta,
    retention: timedelta,
) -> StoredResponse:
    """Run `work` once per key; later calls within `retention` get its stored (status, body).

    A StreamedFingerprint is completed after `work` has read the body, or, for a
    repeat of a finished key, by reading the repeat's body through instead of working.
    """
    with transaction(pool) as conn:
        claimed_at = idempotency_keys.claim(
            conn, scope, key, _pending(request_fingerprint), stale_after, retention
        )
        existing = None if claimed_at else idempotency_keys.find(conn, scope, key)
    if claimed_at is None:
        return _replay(existing, request_fingerprint)
    try:
        with transaction(pool) as conn:
            status, body = work(conn)
            final = _final(request_fingerprint)
            if not idempotency_keys.complete(conn, scope, key, claimed_at, status, body, final):
                # Raising inside the block rolls the work back: the key's new owner
                # is the only request whose work may be committed.
                log.warning("idempotency key %s (%s) was taken over; work rolled back", key, scope)
                raise IdempotencyKeyTakenOver()
    except BaseException:
        # Nothing was committed: free our claim (only ours) so the client may retry.
        with transaction(pool) as conn:
            idempotency_keys.release(conn, scope, key, claimed_at)
        raise
    return StoredResponse(status, body, replayed=False)


def _pending(request_fingerprint: str | StreamedFingerprint) -> str:
    """What the claim holds while the work runs."""
    if isinstance(request_fingerprint, StreamedFingerprint):
        return request_fingerprint.pending
    return request_fingerprint


def _final(request_fingerprint: str | StreamedFingerprint) -> str:
    """The whole request's fingerprint; a streamed body is read through first."""
    if isinstance(request_fingerprint, StreamedFingerprint):
        return request_fingerprint.final()
    return request_fingerprint


def _replay(
    existing: dict | None, request_fingerprint: str | StreamedFingerprint
) -> StoredResponse:
    if existing is None or existing["response_status"] is None:
        raise IdempotencyKeyInProgress()  # before a streamed body is read at all
    if existing["request_fingerprint"] != _final(request_fingerprint):
        raise IdempotencyKeyReused()
    return StoredResponse(existing["response_status"], existing["response_body"], replayed=True)


def clean_up_expired(pool: ConnectionPool, now: datetime, retention: timedelta) -> int:
    """Delete keys older than the retention in short batches (no long lock); returns the count."""
    cutoff = now - retention
    total = 0
    while True:
        with transaction(pool) as conn:
            deleted = idempotency_keys.delete_older_than(conn, cutoff, CLEANUP_BATCH)
        total += deleted
        if deleted < CLEANUP_BATCH:
            return total
