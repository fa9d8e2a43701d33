"""The scheduler's side of delivery: hand due greetings to the queue, recover lost ones.

Rows are claimed (moved to QUEUED with a lease) and committed before anything is
published, so a crash between the two leaves them QUEUED: recovery re-publishes
them when the lease runs out. A message is never lost, at worst published twice,
and the worker's conditional QUEUED -> SENDING makes the second one a no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg_pool import ConnectionPool

from config import Settings
from db.queries import transaction
from repositories import message_lifecycle
from services import planning

log = logging.getLogger(__name__)

Enqueue = Callable[[int], None]


@dataclass(frozen=True)
class DispatchResult:
    queued: int
    expired: int


@dataclass(frozen=True)
class RecoveryResult:
    requeued: int
    failed: int


def dispatch_due(
    pool: ConnectionPool, enqueue: Enqueue, now: datetime, settings: Settings
) -> DispatchResult:
    """Expire what is too late, then queue everything due, in committed batches."""
    with transaction(pool) as conn:
        expired = message_lifecycle.expire_overdue(conn, now, settings.max_lateness)
        planning.plan_after_finished(conn, expired, now, settings.send_time)
    for row in expired:
        log.warning(
            "greeting expired message_id=%s key=%s", row["id"], row["idempotency_key"],
            extra={"message_id": row["id"], "idempotency_key": row["idempotency_key"]},
        )  # fmt: skip
    queued = _claim_and_enqueue(
        pool,
        lambda conn: message_lifecycle.claim_due(
            conn, now, settings.max_lateness, settings.dispatch_batch_size, settings.queued_lease
        ),
        enqueue,
        settings.dispatch_batch_size,
    )
    if queued or expired:
        log.info("dispatched %d greeting(s), expired %d", queued, len(expired))
    return DispatchResult(queued=queued, expired=len(expired))


def _claim_and_enqueue(
    pool: ConnectionPool,
    claim: Callable[[psycopg.Connection], list[dict]],
    enqueue: Enqueue,
    batch_size: int,
    note: str | None = None,
) -> int:
    """Claim rows batch by batch, each batch committed before its ids are published."""
    total = 0
    while True:
        with transaction(pool) as conn:
            claimed = claim(conn)
        for row in claimed:
            if note:
                log.warning(
                    "%s message_id=%s", note, row["id"],
                    extra={"message_id": row["id"], "idempotency_key": row["idempotency_key"]},
                )  # fmt: skip
            enqueue(row["id"])
        total += len(claimed)
        if len(claimed) < batch_size:
            return total


def recover_stale(
    pool: ConnectionPool, enqueue: Enqueue, now: datetime, settings: Settings
) -> RecoveryResult:
    """Re-queue greetings stuck in QUEUED or SENDING past their lease."""
    with transaction(pool) as conn:
        failed = message_lifecycle.fail_exhausted_stale(conn, now, settings.max_retries)
        planning.plan_after_finished(conn, failed, now, settings.send_time)
    requeued = _claim_and_enqueue(
        pool,
        lambda conn: message_lifecycle.reclaim_stale(
            conn, now, settings.queued_lease, settings.dispatch_batch_size
        ),
        enqueue,
        settings.dispatch_batch_size,
        note="re-queued stale greeting",
    )
    return RecoveryResult(requeued=requeued, failed=len(failed))
