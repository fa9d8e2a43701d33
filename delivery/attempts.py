"""The database side of one send attempt: take the greeting, then record what happened.

Two short steps per attempt, neither held open across the provider call: take the
row (QUEUED -> SENDING with a lease: one statement, committed as it runs), then record
the answer (or a postponement) and, in the same transaction, plan next year's
greeting when this one is finished. Taking and recording a sent greeting also come
in batch forms (`begin_sends`, `record_sends`): a worker's threads hand their rows to
one statement and one commit (tasks/batching.py); the single forms are batches of one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta

from psycopg_pool import ConnectionPool

from db.transactions import single_statement, transaction
from domain.delivery_policy import ChannelAnswer, Decision, Verdict
from domain.statuses import Status
from planning import for_users as planning
from recipients.suppression import suppress
from repositories import message_lifecycle

# The row as taken (with its "wording" once rendered: delivery/wording.py), the
# channel's answer, when.
Sent = tuple[dict, ChannelAnswer, datetime]


def begin_sends(
    pool: ConnectionPool,
    targets: Sequence[tuple[int, date | None]],
    now: datetime | None,
    *,
    lease: timedelta,
    max_lateness: timedelta,
    send_time: time,
    window: tuple[time, time] | None = None,
) -> list[dict | None]:
    """Take QUEUED greetings for sending (SENDING with a lease), one statement for all
    the (message id, occasion date or None) targets; for each target its row, or None
    if it is not ours to send.

    Each row carries `window_opens_at`: when the recipient's delivery `window` (opens,
    closes) next opens, if they are outside it now.
    A greeting whose user was deleted or no longer has this occasion comes back
    CANCELLED; one past its deadline comes back EXPIRED; either way the user's next
    greeting is planned.
    With `now` None the database's clock is used; the rows then carry it as
    `database_now`. A message id given twice gets its row once, for its first target.
    """
    with single_statement(pool) as conn:
        rows = message_lifecycle.start_sending_many(conn, targets, now, lease, max_lateness, window)
    ended = [row for row in rows if row["status"] in (Status.EXPIRED, Status.CANCELLED)]
    if ended:
        # Whatever ended the row, its user's next greeting is planned now (a birthday
        # moved while the old greeting was in a worker's hands is due today, perhaps).
        # A transaction of its own: a crash in between leaves the users to the hourly
        # planning, as for the greetings the dispatcher expires.
        with transaction(pool) as conn:
            planning.plan_after_finished(conn, ended, ended[0]["database_now"], send_time)
    unclaimed = {row["id"]: row for row in rows}
    return [unclaimed.pop(message_id, None) for message_id, _ in targets]


def record_sends(
    pool: ConnectionPool,
    sends: Sequence[Sent],
    send_time: time,
) -> list[bool]:
    """Store greetings the provider accepted, each (row as taken, answer, when), and
    plan their users' next ones: one transaction for all. For each, whether it was
    recorded (False: the lease was no longer ours)."""
    answers = [
        message_lifecycle.SentAnswer(
            message["id"],
            message["occasion_date"],
            message["locked_until"],
            sent_at,
            answer.code,
            answer.detail or "",
            *_words(message),
        )
        for message, answer, sent_at in sends
    ]
    with transaction(pool) as conn:
        rows = message_lifecycle.record_sent_many(conn, answers)
        latest = max(sent_at for _, _, sent_at in sends)
        planning.plan_after_finished(conn, rows, latest, send_time)
    recorded = {(row["id"], row["lease"]) for row in rows}
    return [(message["id"], message["locked_until"]) in recorded for message, _, _ in sends]


def _words(message: dict) -> tuple[str | None, str | None]:
    """The subject and text sent, to keep on the row (None: the row's own text stays)."""
    wording = message.get("wording")
    return (wording.subject, wording.text) if wording is not None else (None, None)


def record_outcome(
    pool: ConnectionPool,
    message: dict,
    decision: Decision,
    answer: ChannelAnswer | None,
    now: datetime,
    send_time: time,
    *,
    record_sent: Callable[[Sent], bool] | None = None,
) -> bool:
    """Store the decision and the provider's answer; a finished greeting plans next
    year's in the same transaction. False when the lease was no longer ours (recovery
    took the row over: the newer attempt records instead).

    A sent greeting goes to `record_sent` (a worker's batcher of `record_sends`); by
    default it is recorded alone, as a batch of one.
    """
    if decision.verdict is Verdict.SENT:
        if answer is None:
            raise ValueError("a sent greeting needs the provider's answer")
        if record_sent is None:
            return record_sends(pool, [(message, answer, now)], send_time)[0]
        return record_sent((message, answer, now))
    details = {
        "code": answer.code if answer else None,
        "body": answer.detail if answer else None,
        "error": decision.reason,
    }
    message_id, day, lease = message["id"], message["occasion_date"], message["locked_until"]
    with transaction(pool) as conn:
        if decision.verdict is Verdict.RETRY:
            row = message_lifecycle.record_retry(
                conn,
                message_id,
                day,
                lease,
                now,
                decision.next_attempt_at,
                details,
                counts_as_attempt=decision.counts_as_attempt,
            )
            return row is not None
        final = Status.FAILED if decision.verdict is Verdict.FAIL else Status.EXPIRED
        row = message_lifecycle.record_finished(conn, message_id, day, lease, final, details)
        if row is not None and answer is not None and answer.no_such_recipient:
            # The address has no mailbox: never tried again until taken off the list.
            detail = answer.detail or answer.reason
            suppress(conn, message["email"], "no_such_recipient", "channel", detail)
        if row is not None:
            planning.plan_users(conn, [row["user_id"]], now, send_time)
        return row is not None
