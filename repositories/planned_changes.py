"""Moving or renaming what is planned: SEND_TIME or a zone's rules changed (retime), a
user's zone changed (move what is not yet due), a user's name changed (rename what no
worker holds yet). Nothing here changes a status.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time
from functools import cache
from uuid import UUID

import psycopg
from psycopg import sql

from db.queries import (
    execute,
    fetch_scalar,
)
from domain import statuses
from domain.occasions import OCCASIONS, Occasions
from repositories import occasion_sql
from repositories.occurrences import status_list


def retime_scheduled(
    conn: psycopg.Connection,
    send_time: time,
    *,
    id_after: UUID | None = None,
    id_upto: UUID | None = None,
) -> int:
    """Move SCHEDULED greetings to `send_time` local (SEND_TIME or zone rules changed); how many.

    Rows already at the right instant are not touched, so a run with nothing to do
    writes nothing.
    """
    # The statement lives in SQL (migration 0009) so psql's refresh_tzdata() uses it too.
    return fetch_scalar(
        conn,
        "SELECT retime_scheduled_greetings(%(send_time)s::time, %(id_after)s, %(id_upto)s)",
        {"send_time": send_time, "id_after": id_after, "id_upto": id_upto},
    )


# A user's SCHEDULED greetings not yet due, moved to SEND_TIME local in the user's zone
# on the same date (the same row and key): after a zone change the instant follows the
# zone. An instant that has passed in the new zone makes the greeting due at once (its
# deadline then counts from that instant). Greetings already due keep their instant and
# deadline; an operator's retry (lateness_from) is due already.
_MOVE_NOT_YET_DUE = """
UPDATE message_logs m
SET scheduled_send_time = t.send_at, next_attempt_at = t.send_at
FROM (
    SELECT p.id, p.occasion_date,
           local_send_instant(p.occasion_date, %(send_time)s::time, z.compute_as) AS send_at
    FROM message_logs p
    JOIN users u ON u.id = p.user_id
    JOIN time_zones z ON z.name = u.timezone
    WHERE p.user_id = ANY(%(user_ids)s::uuid[])
      AND p.status = 'SCHEDULED' AND p.lateness_from IS NULL
      AND p.scheduled_send_time > %(now)s
) AS t
WHERE m.id = t.id AND m.occasion_date = t.occasion_date AND m.status = 'SCHEDULED'
  AND m.scheduled_send_time IS DISTINCT FROM t.send_at
"""


def move_not_yet_due(
    conn: psycopg.Connection, user_ids: Sequence[UUID], now: datetime, send_time: time
) -> int:
    """Move the users' greetings not yet due to `send_time` local in their zone; how many."""
    params = {"user_ids": list(user_ids), "now": now, "send_time": send_time}
    return execute(conn, _MOVE_NOT_YET_DUE, params)


# The text of a user's greetings not yet in a worker's hands follows their name (a
# worker reads the text when it takes the greeting). Rows already right are not written.
_RENAME_UNSENT = """
UPDATE message_logs m
SET message_content = {text}
FROM users u
WHERE u.id = ANY(%(user_ids)s::uuid[]) AND m.user_id = u.id AND m.status IN {cancellable}
  AND m.message_content IS DISTINCT FROM {text}
"""


@cache
def _rename_unsent(occasions: Occasions) -> str:
    return (
        sql.SQL(_RENAME_UNSENT)
        .format(
            text=occasion_sql.greeting_text(
                occasions, "m.message_type", "u.first_name", "u.last_name"
            ),
            cancellable=status_list(statuses.CANCELLABLE),
        )
        .as_string()
    )


def rename_unsent(
    conn: psycopg.Connection, user_ids: Sequence[UUID], occasions: Occasions = OCCASIONS
) -> int:
    """Give the users' greetings not yet taken by a worker their current name; how many."""
    return execute(conn, _rename_unsent(occasions), {"user_ids": list(user_ids)})
