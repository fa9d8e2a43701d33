"""Planning every live user, in committed batches (the scheduler, at start and hourly)."""

from __future__ import annotations

import logging
from datetime import datetime, time
from uuid import UUID

from psycopg_pool import ConnectionPool

from db.queries import transaction
from repositories import messages

log = logging.getLogger(__name__)

PLAN_BATCH_SIZE = 50_000


def plan_all(
    pool: ConnectionPool, now: datetime, send_time: time, batch_size: int = PLAN_BATCH_SIZE
) -> int:
    """Plan every live user's missing occurrences, one transaction per id range.

    Also moves SCHEDULED greetings whose send instant no longer matches SEND_TIME
    (the setting changed since they were planned).
    """
    planned = retimed = 0
    after: UUID | None = None
    while True:
        with transaction(pool) as conn:
            upto = messages.user_id_batch_end(conn, after, batch_size)
            if upto is None:
                break
            retimed += messages.retime_scheduled(conn, send_time, id_after=after, id_upto=upto)
            planned += messages.plan_next_occurrences(
                conn, now, send_time, id_after=after, id_upto=upto
            )
        after = upto
    log.info("planned %d occurrence(s), moved %d to a new send time", planned, retimed)
    return planned
