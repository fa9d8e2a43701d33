"""MAX_LATENESS holds wherever a greeting moves toward the provider; answers are recorded
only by the attempt holding the lease; planning after a send reads the user under lock.

Real PostgreSQL, fixed `now` instants; the helpers come from test_dispatch.
"""

from __future__ import annotations

import threading
import time as clock
from datetime import timedelta

import psycopg
from psycopg.rows import dict_row

from delivery import attempts as delivery
from delivery import dispatch
from delivery import messages as messages_service
from domain.delivery_policy import Decision, Verdict
from tests.db.delivery.test_dispatch import (
    DUE,
    NINE,
    NOW,
    Recorder,
    add_message,
    answer,
    configured,
    row,
    scheduled_dates,
    sending,
    take,
)
from users import directory as users_service

HOUR = timedelta(hours=1)


def set_columns(db, message_id: int, **values) -> None:
    for column, value in values.items():
        db.execute(
            f"UPDATE message_logs SET {column} = %s WHERE id = %s",
            (value, message_id),
        )


def test_a_queued_row_past_its_deadline_is_expired_not_published_again(db_url, db, pool):
    settings = configured(db_url, max_lateness=HOUR)
    message_id = add_message(db, status="QUEUED", locked_until=DUE + timedelta(minutes=10))
    enqueue = Recorder()
    later = DUE + HOUR + timedelta(minutes=1)

    recovered = dispatch.recover_stale(pool, enqueue, later, settings)
    result = dispatch.dispatch_due(pool, enqueue, later, settings)

    assert recovered == dispatch.RecoveryResult(requeued=0)
    assert result.expired == 1
    assert enqueue.ids == []
    assert row(db, message_id)["status"] == "EXPIRED"


def test_a_retrying_row_waiting_for_a_far_retry_is_expired_at_its_deadline(db_url, db, pool):
    settings = configured(db_url, max_lateness=HOUR)
    week_later = DUE + timedelta(days=7)
    message_id = add_message(db, status="RETRYING", next_attempt_at=week_later, retry_count=1)

    result = dispatch.dispatch_due(pool, Recorder(), DUE + HOUR + timedelta(seconds=1), settings)

    assert result.expired == 1
    assert row(db, message_id)["status"] == "EXPIRED"


def test_a_row_held_by_a_worker_is_not_expired_under_it(db_url, db, pool):
    settings = configured(db_url, max_lateness=HOUR)
    later = DUE + HOUR + timedelta(minutes=1)
    message_id = add_message(db, status="SENDING", locked_until=later + timedelta(minutes=1))

    result = dispatch.dispatch_due(pool, Recorder(), later, settings)

    assert result.expired == 0
    assert row(db, message_id)["status"] == "SENDING"


def test_a_worker_taking_a_queued_row_past_its_deadline_expires_it_and_plans_next_year(
    db_url, db, pool
):
    settings = configured(db_url, max_lateness=HOUR)
    message_id = add_message(db, status="QUEUED", locked_until=DUE + 3 * HOUR)

    taken = take(pool, message_id, DUE + HOUR + timedelta(seconds=1), settings)

    expired = row(db, message_id)
    assert taken is not None and taken["status"] == "EXPIRED"
    assert (expired["status"], expired["locked_until"]) == ("EXPIRED", None)
    assert len(scheduled_dates(db, expired["user_id"])) == 1


def test_an_operators_retry_gives_a_fresh_window_from_the_moment_of_the_retry(db_url, db, pool):
    settings = configured(db_url, max_lateness=HOUR)
    message_id = add_message(db, status="EXPIRED")
    retried_at = DUE + timedelta(days=3)
    with pool.connection() as conn:
        messages_service.retry_message(conn, message_id, retried_at)

    within = dispatch.dispatch_due(pool, Recorder(), retried_at + timedelta(minutes=59), settings)

    assert within.queued == 1
    assert row(db, message_id)["lateness_from"] == retried_at


def test_expiry_works_in_bounded_batches_and_expires_every_overdue_row(db_url, db, pool):
    settings = configured(db_url, max_lateness=HOUR, dispatch_batch_size=3)
    ids = [add_message(db) for _ in range(7)]

    result = dispatch.dispatch_due(pool, Recorder(), DUE + 2 * HOUR, settings)

    assert result.expired == 7
    assert {row(db, message_id)["status"] for message_id in ids} == {"EXPIRED"}


def test_a_queued_row_stuck_behind_a_backlog_is_republished_at_doubling_intervals(
    db, pool, settings
):
    lease = settings.queued_lease
    message_id = add_message(db, status="QUEUED", locked_until=NOW + lease)
    set_columns(db, message_id, queued_at=NOW)
    enqueue = Recorder()

    instants = [NOW + lease * n + timedelta(seconds=1) for n in range(1, 9)]
    for instant in instants:
        dispatch.recover_stale(pool, enqueue, instant, settings)

    # Published again after 1, 3 and 7 leases of waiting (each wait as long as all
    # before it), not after each of the 8 leases.
    assert len(enqueue.ids) == 3
    assert row(db, message_id)["queued_at"] == NOW


def test_an_attempt_whose_lease_was_taken_over_cannot_overwrite_the_newer_attempt(
    db, pool, settings
):
    first = sending(db, pool, settings)
    later = NOW + settings.sending_lease + timedelta(seconds=1)
    dispatch.recover_stale(pool, Recorder(), later, settings)
    second = take(pool, first["id"], later, settings)
    assert second is not None and second["status"] == "SENDING"

    stale = delivery.record_outcome(
        pool, first, Decision(Verdict.FAIL, reason="late"), answer(500, "late"), later, NINE
    )
    fresh = delivery.record_outcome(
        pool, second, Decision(Verdict.SENT), answer(200, "ok"), later, NINE
    )

    assert (stale, fresh) == (False, True)
    assert row(db, first["id"])["status"] == "SENT"


def test_next_years_greeting_carries_a_name_changed_while_the_send_was_recorded(
    db_url, db, pool, settings
):
    message = sending(db, pool, settings)
    user_id = message["user_id"]
    recorded = threading.Event()

    with psycopg.connect(db_url, row_factory=dict_row, options="-c TimeZone=UTC") as api:
        # The API's PATCH, its transaction still open while the worker records SENT.
        users_service.patch_user(api, user_id, {"first_name": "Grace"}, NOW, NINE)

        def record() -> None:
            delivery.record_outcome(
                pool, message, Decision(Verdict.SENT), answer(200, "ok"), NOW, NINE
            )
            recorded.set()

        worker = threading.Thread(target=record)
        worker.start()
        clock.sleep(0.5)  # the worker reaches the user row and waits for the PATCH
        api.commit()
        worker.join(timeout=10)

    assert recorded.is_set()
    [planned] = db.execute(
        "SELECT message_content FROM message_logs WHERE user_id = %s AND status = 'SCHEDULED'",
        (user_id,),
    ).fetchall()
    assert planned["message_content"].startswith("Hey, Grace Lovelace")
