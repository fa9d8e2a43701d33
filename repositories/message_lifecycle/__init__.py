"""Status changes of message_logs rows, each a conditional UPDATE … RETURNING.

The one place a greeting changes status (the planner's CANCELLED -> SCHEDULED
revival aside, which is part of the planning statement in repositories/occurrences.py).
The statuses and their named sets come from domain/statuses.py. Every transition
names the status it expects; when no row comes back, another process changed the
row first and the caller does nothing. A worker's answer is recorded only while it
still holds the lease it took (`lease` below is that lease's end, used as a token).

A greeting's deadline is COALESCE(lateness_from, scheduled_send_time) + MAX_LATENESS:
no transition moves a greeting toward the provider after it.

By who makes the change: dispatch.py (the scheduler: expire, claim, recover), sends.py
(the worker: take, record), edits.py (a user's edit or deletion, an operator's retry);
the pieces of SQL they share, sql_parts.py.
"""

from __future__ import annotations

from repositories.message_lifecycle.dispatch import (
    claim_due,
    claim_due_in_window,
    count_queued,
    expire_overdue,
    reclaim_stale,
    seconds_until_next_due,
    window_openings,
)
from repositories.message_lifecycle.edits import (
    cancel_for_address,
    cancel_off_date,
    cancel_pending,
    make_due_again,
)
from repositories.message_lifecycle.sends import (
    SentAnswer,
    record_finished,
    record_retry,
    record_sent_many,
    start_sending_many,
)
from repositories.message_lifecycle.sql_parts import RESPONSE_BODY_LIMIT

__all__ = [
    "RESPONSE_BODY_LIMIT",
    "SentAnswer",
    "cancel_for_address",
    "cancel_off_date",
    "cancel_pending",
    "claim_due",
    "claim_due_in_window",
    "count_queued",
    "expire_overdue",
    "make_due_again",
    "reclaim_stale",
    "record_finished",
    "record_retry",
    "record_sent_many",
    "seconds_until_next_due",
    "start_sending_many",
    "window_openings",
]
