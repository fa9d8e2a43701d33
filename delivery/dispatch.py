"""The scheduler's side of delivery: hand due greetings to the queue, recover lost ones.

Rows are claimed (moved to QUEUED with a lease) and committed before anything is
published, so a crash between the two leaves them QUEUED: recovery re-publishes
them when the lease runs out. A message is never lost, at worst published twice,
and the worker's conditional QUEUED -> SENDING makes the second one a no-op.
Every step works in committed batches of `DISPATCH_BATCH_SIZE` rows, so a backlog
after a long outage never makes one statement outlast the statement timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import date, datetime

import psycopg
from psycopg_pool import ConnectionPool

from config import Settings
from db.transactions import transaction
from domain import statuses
from domain.statuses import Status
from planning import for_users as planning
from repositories import message_lifecycle

log = logging.getLogger(__name__)

# Publishes one greeting: its id and occasion_date (the partition it lives in).
Enqueue = Callable[[int, date], None]
# Claims (and commits) up to `limit` rows.
Claim = Callable[[psycopg.Connection, int], list[dict]]
# Messages waiting in the work queue and its delay queue; None when RabbitMQ cannot say.
QueueCount = Callable[[], int | None]
QUEUED = (Status.QUEUED,)


@dataclass(frozen=True)
class DispatchResult:
    queued: int
    expired: int


@dataclass(frozen=True)
class RecoveryResult:
    requeued: int


def dispatch_due(
    pool: ConnectionPool,
    enqueue: Enqueue,
    now: datetime,
    settings: Settings,
    publishers: Executor | None = None,
) -> DispatchResult:
    """Expire what is past its deadline, then queue everything due, in committed batches.

    With `publishers`, each batch is published from their threads at once: a publish
    waits for RabbitMQ's confirm, and one at a time the confirms' round trips, not the
    broker, bounded how fast a backlog reached the workers.
    """
    expired = expire_overdue(pool, now, settings)
    queued, deferred = _claim_and_enqueue(
        pool,
        _due_claim(pool, now, settings),
        enqueue,
        settings.dispatch_batch_size,
        publishers=publishers,
    )
    if queued or expired or deferred:
        log.info(
            "dispatched %d greeting(s), expired %d, %d wait for their delivery window",
            queued,
            expired,
            deferred,
        )
    return DispatchResult(queued=queued, expired=expired)


def _due_claim(pool: ConnectionPool, now: datetime, settings: Settings) -> Claim:
    """How dispatch takes due rows: all of them to the queue, or, with a DELIVERY_WINDOW,
    those of recipients outside it to its next opening (`waits_until`, not published).
    The zones' openings are computed once for the dispatch, not once per row."""
    max_lateness, lease, window = (
        settings.max_lateness,
        settings.queued_lease,
        settings.delivery_hours,
    )
    if window is None:
        return lambda conn, limit: message_lifecycle.claim_due(
            conn, now, max_lateness, limit, lease
        )
    with transaction(pool) as conn:
        openings = message_lifecycle.window_openings(conn, now, window)
    return lambda conn, limit: message_lifecycle.claim_due_in_window(
        conn, now, max_lateness, limit, lease, openings
    )


def expire_overdue(pool: ConnectionPool, now: datetime, settings: Settings) -> int:
    """EXPIRED for every unfinished greeting past its deadline; next year's planned.

    Planning runs in a transaction of its own after each batch commits: it locks
    the users (see repositories/occurrences.py), and taking user locks while holding
    message locks could deadlock with an API update, which takes them the other
    way round. A crash in between leaves the users to the hourly planning.
    """
    total = 0
    while True:
        with transaction(pool) as conn:
            expired = message_lifecycle.expire_overdue(
                conn, now, settings.max_lateness, settings.dispatch_batch_size
            )
        for row in expired:
            log.warning(
                "greeting expired message_id=%s key=%s",
                row["id"],
                row["idempotency_key"],
                extra={"message_id": row["id"], "idempotency_key": row["idempotency_key"]},
            )
        if expired:
            with transaction(pool) as conn:
                planning.plan_after_finished(conn, expired, now, settings.send_time)
        total += len(expired)
        if len(expired) < settings.dispatch_batch_size:
            return total


def _claim_and_enqueue(
    pool: ConnectionPool,
    claim: Claim,
    enqueue: Enqueue,
    batch_size: int,
    note: str | None = None,
    at_most: int | None = None,
    publishers: Executor | None = None,
) -> tuple[int, int]:
    """Claim rows batch by batch, at most `at_most` in all (None: every one), each
    batch committed before its ids are published; how many were published, and how
    many the claim set to wait instead (a `waits_until`: outside the delivery window)."""
    total = waiting = 0
    while at_most is None or total < at_most:
        limit = batch_size if at_most is None else min(batch_size, at_most - total)
        with transaction(pool) as conn:
            claimed = claim(conn, limit)
        queued = [row for row in claimed if row.get("waits_until") is None]
        _publish(queued, enqueue, note, publishers)
        total += len(claimed)
        waiting += len(claimed) - len(queued)
        if len(claimed) < limit:
            break
    return total - waiting, waiting


def _publish(
    rows: list[dict], enqueue: Enqueue, note: str | None, publishers: Executor | None
) -> None:
    """Publish every claimed row (from `publishers`' threads when given); the first
    failure is raised once all were tried, the rows not published wait for recovery."""

    def publish(row: dict) -> None:
        if note:
            log.warning(
                "%s message_id=%s",
                note,
                row["id"],
                extra={"message_id": row["id"], "idempotency_key": row["idempotency_key"]},
            )
        enqueue(row["id"], row["occasion_date"])

    if publishers is None or len(rows) < 2:
        for row in rows:
            publish(row)
        return
    for outcome in [publishers.submit(publish, row) for row in rows]:
        outcome.result()


def recover_stale(
    pool: ConnectionPool,
    enqueue: Enqueue,
    now: datetime,
    settings: Settings,
    messages_in_queue: QueueCount | None = None,
    publishers: Executor | None = None,
) -> RecoveryResult:
    """Re-queue greetings stuck in QUEUED or SENDING past their lease, within their deadline.

    A SENDING row past its lease lost its worker: it is always queued again. A QUEUED
    row past its lease may simply be waiting its turn behind a long queue (20,000 due at
    once under a rate limit): given `messages_in_queue`, only as many of them as the
    queue lacks messages for QUEUED rows are published again, oldest first; with the
    count unknown (RabbitMQ unreachable, so a publish would fail too) none are. Without
    `messages_in_queue` every stale QUEUED row is published again. Those past their
    deadline are left to `expire_overdue`. A lost worker never makes a greeting FAILED:
    only the provider's answers do. `publishers` as for `dispatch_due`.
    """
    publish = (pool, enqueue, now, settings)
    if messages_in_queue is None:
        return RecoveryResult(_reclaim(*publish, statuses.IN_FLIGHT, None, publishers))
    requeued = _reclaim(*publish, (Status.SENDING,), None, publishers)
    missing = _missing_from_queue(pool, messages_in_queue)
    if missing:
        requeued += _reclaim(*publish, QUEUED, missing, publishers)
    return RecoveryResult(requeued=requeued)


def _missing_from_queue(pool: ConnectionPool, messages_in_queue: QueueCount) -> int:
    """QUEUED rows beyond the messages waiting in the queue (0 when the count is unknown)."""
    in_queue = messages_in_queue()
    if in_queue is None:
        log.warning("queue depth unknown: stale QUEUED greetings are left for the next round")
        return 0
    with transaction(pool) as conn:
        queued = message_lifecycle.count_queued(conn)
    return max(0, queued - in_queue)


def _reclaim(
    pool: ConnectionPool,
    enqueue: Enqueue,
    now: datetime,
    settings: Settings,
    which: tuple[Status, ...],
    at_most: int | None,
    publishers: Executor | None = None,
) -> int:
    """Queue again up to `at_most` (None: every) stale row in the statuses `which`."""
    requeued, _ = _claim_and_enqueue(
        pool,
        lambda conn, limit: message_lifecycle.reclaim_stale(
            conn, now, settings.queued_lease, settings.max_lateness, limit, which
        ),
        enqueue,
        settings.dispatch_batch_size,
        note="re-queued stale greeting",
        at_most=at_most,
        publishers=publishers,
    )
    return requeued
