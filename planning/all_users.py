"""Planning every live user, in committed batches (the scheduler, at start and hourly)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, time
from uuid import UUID

from psycopg_pool import ConnectionPool

from db.transactions import transaction
from repositories import occurrences, planned_changes, planning_state

log = logging.getLogger(__name__)

PLAN_BATCH_SIZE = 50_000
# Planning at least this many rows in one run refreshes the tables' statistics.
STATISTICS_REFRESH_AFTER = 1_000


def plan_all(
    pool: ConnectionPool, now: datetime, send_time: time, batch_size: int = PLAN_BATCH_SIZE
) -> int:
    """Plan every live user's missing occurrences; how many were planned.

    First moves SCHEDULED greetings whose send instant no longer matches SEND_TIME, when
    SEND_TIME changed since the last run. Then one anti-join finds the users missing an
    occurrence: up to `batch_size` of them are planned in one statement, more (a first
    run, a restore) by id range, one committed transaction per `batch_size` users. A run
    with nothing to do therefore reads the pending rows once and writes nothing.
    """
    retimed = _retime_if_send_time_changed(pool, send_time, batch_size)
    with transaction(pool) as conn:
        missing = occurrences.users_missing_an_occurrence(conn, batch_size + 1)
    if len(missing) > batch_size:
        planned = _plan_in_batches(pool, now, send_time, batch_size)
    elif missing:
        with transaction(pool) as conn:
            planned = occurrences.plan_next_occurrences(conn, now, send_time, user_ids=missing)
    else:
        planned = 0
    if planned >= STATISTICS_REFRESH_AFTER:
        # Autovacuum analyzes the partitions in its own time and never the partitioned
        # table: after a first run, a restore or a bulk import, fresh statistics let the
        # next run's anti-join hash the pending rows instead of probing them user by
        # user, and keep the statements of every send on the users' and the pending
        # rows' indexes (without them, a freshly filled partition looks empty and a
        # send's planning read every pending row of it: ~12x its cost, measured).
        with transaction(pool) as conn:
            occurrences.refresh_statistics(conn)
    log.info("planned %d occurrence(s), moved %d to a new send time", planned, retimed)
    return planned


def _user_ranges(pool: ConnectionPool, batch_size: int) -> Iterator[tuple[UUID | None, UUID]]:
    """Consecutive user id ranges (after, upto] of `batch_size` users each."""
    after: UUID | None = None
    while True:
        with transaction(pool) as conn:
            upto = occurrences.user_id_batch_end(conn, after, batch_size)
        if upto is None:
            return
        yield after, upto
        after = upto


def _retime_if_send_time_changed(pool: ConnectionPool, send_time: time, batch_size: int) -> int:
    with transaction(pool) as conn:
        if planning_state.retimed_to(conn) == send_time:
            return 0
    retimed = 0
    for after, upto in _user_ranges(pool, batch_size):
        with transaction(pool) as conn:
            retimed += planned_changes.retime_scheduled(
                conn, send_time, id_after=after, id_upto=upto
            )
    with transaction(pool) as conn:
        planning_state.record_retimed_to(conn, send_time)
    return retimed


def _plan_in_batches(pool: ConnectionPool, now: datetime, send_time: time, batch_size: int) -> int:
    planned = 0
    for after, upto in _user_ranges(pool, batch_size):
        with transaction(pool) as conn:
            planned += occurrences.plan_next_occurrences(
                conn, now, send_time, id_after=after, id_upto=upto
            )
    return planned
