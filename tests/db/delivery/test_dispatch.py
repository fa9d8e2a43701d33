"""The delivery lifecycle in SQL: dispatch, recovery, and one send attempt's bookkeeping.

Runs delivery.dispatch and delivery.attempts against the real PostgreSQL with fixed
`now` instants. `enqueue` is a plain function collecting ids: publishing to the real
RabbitMQ broker is covered by the end-to-end tests, not here.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time, timedelta

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from config import Settings
from delivery import attempts as delivery
from delivery import dispatch
from domain.delivery_policy import ChannelAnswer, Decision, Outcome, Verdict
from planning import for_users as planning
from repositories import users
from tests import factories

NINE = time(9, 0)
BIRTHDAY = date(1990, 11, 26)
TODAY = date(2026, 11, 26)
NEXT_YEAR = date(2027, 11, 26)
DUE = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)  # 09:00 in London, where it is UTC in November
NOW = datetime(2026, 11, 26, 9, 5, tzinfo=UTC)


def configured(db_url: str, **overrides) -> Settings:
    return Settings.from_env({}, database_url=db_url, **overrides)


class Recorder:
    """The `enqueue` callable: remembers every id it was given, in order."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.dates: list[date | None] = []

    def __call__(self, message_id: int, occasion_date: date | None = None) -> None:
        self.ids.append(message_id)
        self.dates.append(occasion_date)


def make_user(db: psycopg.Connection, **fields) -> dict:
    """A London user whose birthday is TODAY."""
    return factories.make_user(db, birthday=BIRTHDAY, **fields)


def add_message(
    db: psycopg.Connection,
    user: dict | None = None,
    *,
    status: str = "SCHEDULED",
    next_attempt_at: datetime = DUE,
    locked_until: datetime | None = None,
    retry_count: int = 0,
) -> int:
    """This year's birthday greeting of `user` (a new user by default), in the given state."""
    message = factories.make_message(
        db,
        user or make_user(db),
        status=status,
        scheduled=DUE,
        occasion_date=TODAY,
        message_content="Hey, Ada Lovelace it's your birthday",
        next_attempt_at=next_attempt_at,
        locked_until=locked_until,
        retry_count=retry_count,
    )
    return message["id"]


def row(db: psycopg.Connection, message_id: int) -> dict:
    return db.execute("SELECT * FROM message_logs WHERE id = %s", (message_id,)).fetchone()


def statuses(db: psycopg.Connection, ids: list[int]) -> set[str]:
    found = db.execute("SELECT status FROM message_logs WHERE id = ANY(%s)", (ids,)).fetchall()
    return {r["status"] for r in found}


def scheduled_dates(db: psycopg.Connection, user_id) -> list[date]:
    found = db.execute(
        "SELECT occasion_date FROM message_logs WHERE user_id = %s AND status = 'SCHEDULED'"
        " ORDER BY occasion_date",
        (user_id,),
    ).fetchall()
    return [r["occasion_date"] for r in found]


def user_of(db: psycopg.Connection, message_id: int):
    return row(db, message_id)["user_id"]


def take(
    pool: ConnectionPool,
    message_id: int,
    now: datetime,
    settings: Settings,
    occasion_date: date | None = None,
) -> dict | None:
    """One greeting taken as the worker takes its batches (`begin_sends` of one)."""
    return delivery.begin_sends(
        pool,
        [(message_id, occasion_date)],
        now,
        lease=settings.sending_lease,
        max_lateness=settings.max_lateness,
        send_time=NINE,
    )[0]


def answer(code: int | None, body: str | None, error: str | None = None) -> ChannelAnswer:
    """A provider answer as the client builds it."""
    outcome = Outcome.DELIVERED if code and code < 300 else Outcome.RETRY_LATER
    return ChannelAnswer(outcome, reason=error, code=code, detail=body)


def sending(db: psycopg.Connection, pool: ConnectionPool, settings: Settings) -> dict:
    """A message taken for sending, as the worker holds it."""
    message_id = add_message(db, status="QUEUED", locked_until=NOW + timedelta(minutes=5))
    message = take(pool, message_id, NOW, settings)
    assert message is not None and message["status"] == "SENDING"
    return message


# dispatch_due


def test_a_due_scheduled_row_is_queued_with_a_lease_and_enqueued_once(db, pool, settings):
    user = make_user(db)
    planning.plan_user(db, user["id"], datetime(2026, 11, 26, tzinfo=UTC), NINE)
    [planned] = db.execute("SELECT id FROM message_logs WHERE user_id = %s", (user["id"],))
    enqueue = Recorder()

    result = dispatch.dispatch_due(pool, enqueue, NOW, settings)

    queued = row(db, planned["id"])
    assert enqueue.ids == [planned["id"]]
    assert result == dispatch.DispatchResult(queued=1, expired=0)
    assert queued["status"] == "QUEUED"
    assert queued["locked_until"] == NOW + settings.queued_lease


def test_a_claimed_row_is_committed_before_it_is_enqueued(db_url, db, pool, settings):
    message_id = add_message(db)
    seen: list[tuple] = []

    def enqueue(claimed_id: int, occasion_date: date) -> None:
        with psycopg.connect(db_url, row_factory=dict_row) as other:
            found = row(other, claimed_id)
        seen.append((claimed_id, found["status"], found["locked_until"]))

    dispatch.dispatch_due(pool, enqueue, NOW, settings)

    assert seen == [(message_id, "QUEUED", NOW + settings.queued_lease)]


def test_a_row_not_yet_due_is_left_alone(db, pool, settings):
    message_id = add_message(db, next_attempt_at=NOW + timedelta(seconds=1))
    before = row(db, message_id)
    enqueue = Recorder()

    result = dispatch.dispatch_due(pool, enqueue, NOW, settings)

    assert enqueue.ids == []
    assert result == dispatch.DispatchResult(queued=0, expired=0)
    assert row(db, message_id) == before


def test_a_retrying_row_whose_next_attempt_has_come_is_dispatched(db, pool, settings):
    message_id = add_message(db, status="RETRYING", next_attempt_at=NOW, retry_count=2)
    enqueue = Recorder()

    dispatch.dispatch_due(pool, enqueue, NOW, settings)

    queued = row(db, message_id)
    assert enqueue.ids == [message_id]
    assert (queued["status"], queued["retry_count"]) == ("QUEUED", 2)


def test_a_retrying_row_whose_next_attempt_is_ahead_is_not_dispatched(db, pool, settings):
    message_id = add_message(db, status="RETRYING", next_attempt_at=NOW + timedelta(minutes=3))
    enqueue = Recorder()

    dispatch.dispatch_due(pool, enqueue, NOW, settings)

    assert enqueue.ids == []
    assert row(db, message_id)["status"] == "RETRYING"


def test_a_row_later_than_max_lateness_expires_and_next_year_is_planned(db_url, db, pool):
    settings = configured(db_url, max_lateness=timedelta(hours=1))
    message_id = add_message(db)  # due at 09:00, one hour late at 10:00
    enqueue = Recorder()

    result = dispatch.dispatch_due(
        pool, enqueue, datetime(2026, 11, 26, 10, 1, tzinfo=UTC), settings
    )

    expired = row(db, message_id)
    assert enqueue.ids == []
    assert result == dispatch.DispatchResult(queued=0, expired=1)
    assert expired["status"] == "EXPIRED"
    assert expired["error_message"]
    assert expired["locked_until"] is None
    assert scheduled_dates(db, expired["user_id"]) == [NEXT_YEAR]


def test_every_due_row_is_queued_in_batches_oldest_first_in_one_call(db_url, db, pool):
    settings = configured(db_url, dispatch_batch_size=3)
    minutes_late = [4, 60, 1, 30, 7, 45, 2]  # inserted out of order on purpose
    ids = {
        late: add_message(db, next_attempt_at=NOW - timedelta(minutes=late))
        for late in minutes_late
    }
    oldest_first = [ids[late] for late in sorted(minutes_late, reverse=True)]
    enqueue = Recorder()

    result = dispatch.dispatch_due(pool, enqueue, NOW, settings)

    batches = [set(enqueue.ids[0:3]), set(enqueue.ids[3:6]), set(enqueue.ids[6:])]
    assert result.queued == 7
    assert len(enqueue.ids) == 7
    assert batches == [set(oldest_first[0:3]), set(oldest_first[3:6]), set(oldest_first[6:])]
    assert statuses(db, oldest_first) == {"QUEUED"}


def test_two_racing_dispatchers_enqueue_every_due_row_exactly_once(db_url, db, pool):
    settings = configured(db_url, dispatch_batch_size=4)
    ids = [add_message(db, next_attempt_at=NOW - timedelta(seconds=n)) for n in range(40)]
    enqueue = Recorder()  # list.append is atomic: one list shared by both threads
    start = threading.Barrier(2, timeout=10)

    def dispatcher() -> dispatch.DispatchResult:
        start.wait()
        return dispatch.dispatch_due(pool, enqueue, NOW, settings)

    with ThreadPoolExecutor(max_workers=2) as executor:
        results = [f.result() for f in [executor.submit(dispatcher) for _ in range(2)]]

    assert sorted(enqueue.ids) == sorted(ids)
    assert sum(r.queued for r in results) == 40
    assert statuses(db, ids) == {"QUEUED"}


@pytest.mark.parametrize("status", ["CANCELLED", "SENT", "FAILED"])
def test_finished_or_cancelled_rows_are_never_dispatched(db, pool, settings, status):
    message_id = add_message(db, status=status, next_attempt_at=NOW - timedelta(minutes=1))
    enqueue = Recorder()

    dispatch.dispatch_due(pool, enqueue, NOW, settings)

    assert enqueue.ids == []
    assert row(db, message_id)["status"] == status


# recover_stale


def test_a_queued_row_whose_lease_ran_out_is_re_enqueued_with_a_new_lease(db, pool, settings):
    message_id = add_message(
        db, status="QUEUED", locked_until=NOW - timedelta(seconds=1), retry_count=2
    )
    enqueue = Recorder()

    result = dispatch.recover_stale(pool, enqueue, NOW, settings)

    recovered = row(db, message_id)
    assert enqueue.ids == [message_id]
    assert result == dispatch.RecoveryResult(requeued=1)
    assert recovered["status"] == "QUEUED"
    assert recovered["locked_until"] == NOW + settings.queued_lease
    assert recovered["retry_count"] == 2


def test_a_sending_row_whose_worker_died_is_queued_again_without_using_a_retry(db, pool, settings):
    message_id = add_message(
        db, status="SENDING", locked_until=NOW - timedelta(seconds=1), retry_count=1
    )
    enqueue = Recorder()

    dispatch.recover_stale(pool, enqueue, NOW, settings)

    recovered = row(db, message_id)
    assert enqueue.ids == [message_id]
    assert recovered["status"] == "QUEUED"
    assert recovered["retry_count"] == 1  # a crash of ours is not a provider attempt
    assert recovered["last_retry_at"] is None
    assert recovered["locked_until"] == NOW + settings.queued_lease
    assert recovered["queued_at"] == NOW


def test_a_lost_sending_row_is_never_failed_however_often_its_worker_died(db_url, db, pool):
    settings = configured(db_url, max_retries=3)
    message_id = add_message(
        db, status="SENDING", locked_until=NOW - timedelta(seconds=1), retry_count=3
    )
    enqueue = Recorder()

    for attempt in range(5):  # the worker dies every time: the lease runs out again
        later = NOW + attempt * (settings.queued_lease + timedelta(seconds=1))
        db.execute(
            "UPDATE message_logs SET status = 'SENDING', locked_until = %s WHERE id = %s",
            (later - timedelta(seconds=1), message_id),
        )
        result = dispatch.recover_stale(pool, enqueue, later, settings)
        assert result == dispatch.RecoveryResult(requeued=1)

    recovered = row(db, message_id)
    assert enqueue.ids == [message_id] * 5
    assert (recovered["status"], recovered["retry_count"]) == ("QUEUED", 3)


def _stale_queued(db, count: int) -> list[int]:
    """`count` QUEUED rows whose leases ran out one second apart, oldest first."""
    return [
        add_message(db, status="QUEUED", locked_until=NOW - timedelta(seconds=count - n))
        for n in range(count)
    ]


def test_stale_queued_rows_that_the_queue_still_holds_messages_for_are_not_published_again(
    db, pool, settings
):
    _stale_queued(db, 3)
    enqueue = Recorder()

    result = dispatch.recover_stale(pool, enqueue, NOW, settings, messages_in_queue=lambda: 3)

    assert enqueue.ids == []
    assert result == dispatch.RecoveryResult(requeued=0)
    assert {row["status"] for row in db.execute("SELECT status FROM message_logs")} == {"QUEUED"}


def test_only_as_many_stale_queued_rows_as_the_queue_lacks_are_published_again_oldest_first(
    db, pool, settings
):
    oldest, second, _newest = _stale_queued(db, 3)
    enqueue = Recorder()

    result = dispatch.recover_stale(pool, enqueue, NOW, settings, messages_in_queue=lambda: 1)

    assert enqueue.ids == [oldest, second]
    assert result == dispatch.RecoveryResult(requeued=2)


def test_with_the_queue_depth_unknown_stale_queued_rows_wait_but_lost_workers_rows_do_not(
    db, pool, settings
):
    _stale_queued(db, 2)
    lost = add_message(db, status="SENDING", locked_until=NOW - timedelta(seconds=1))
    enqueue = Recorder()

    result = dispatch.recover_stale(pool, enqueue, NOW, settings, messages_in_queue=lambda: None)

    assert enqueue.ids == [lost]
    assert result == dispatch.RecoveryResult(requeued=1)


def test_rows_whose_lease_is_still_running_are_left_alone(db, pool, settings):
    ids = [
        add_message(db, status=status, locked_until=NOW + timedelta(seconds=1))
        for status in ("QUEUED", "SENDING")
    ]
    before = [row(db, message_id) for message_id in ids]
    enqueue = Recorder()

    result = dispatch.recover_stale(pool, enqueue, NOW, settings)

    assert enqueue.ids == []
    assert result == dispatch.RecoveryResult(requeued=0)
    assert [row(db, message_id) for message_id in ids] == before


# begin_sends


def test_begin_send_takes_a_queued_message_with_a_lease_and_the_users_email(db, pool, settings):
    user = make_user(db, email="ada@example.com")
    message_id = add_message(db, user, status="QUEUED", locked_until=NOW + timedelta(minutes=5))

    message = take(pool, message_id, NOW, settings)

    taken = row(db, message_id)
    assert message is not None
    taken_as = (message["id"], message["status"], message["email"])
    assert taken_as == (message_id, "SENDING", "ada@example.com")
    assert taken["status"] == "SENDING"
    assert taken["locked_until"] == NOW + settings.sending_lease


def test_a_second_begin_send_for_the_same_message_does_nothing(db, pool, settings):
    message_id = add_message(db, status="QUEUED", locked_until=NOW + timedelta(minutes=5))
    take(pool, message_id, NOW, settings)
    before = row(db, message_id)

    again = take(pool, message_id, NOW + timedelta(seconds=5), settings)

    assert again is None
    assert row(db, message_id) == before


@pytest.mark.parametrize("status", ["SCHEDULED", "RETRYING", "SENT", "CANCELLED"])
def test_begin_send_on_a_message_that_is_not_queued_returns_none(db, pool, settings, status):
    message_id = add_message(db, status=status)
    before = row(db, message_id)

    taken = take(pool, message_id, NOW, settings)

    assert taken is None
    assert row(db, message_id) == before


def test_a_deleted_users_queued_message_is_cancelled_instead_of_sent(db, pool, settings):
    user = make_user(db)
    message_id = add_message(db, user, status="QUEUED", locked_until=NOW + timedelta(minutes=5))
    users.soft_delete(db, user["id"])  # the repository alone: no cancelling by the service

    taken = take(pool, message_id, NOW, settings)

    cancelled = row(db, message_id)
    assert taken is not None and taken["status"] == "CANCELLED"
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["locked_until"] is None
    assert cancelled["error_message"]


def test_a_queued_message_for_a_birthday_changed_since_is_cancelled(db, pool, settings):
    user = make_user(db)
    message_id = add_message(db, user, status="QUEUED", locked_until=NOW + timedelta(minutes=5))
    db.execute("UPDATE users SET birthday_date = '1990-11-27' WHERE id = %s", (user["id"],))

    taken = take(pool, message_id, NOW, settings)

    assert taken is not None and taken["status"] == "CANCELLED"
    assert row(db, message_id)["status"] == "CANCELLED"


# record_outcome


def test_a_sent_outcome_is_stored_and_next_year_planned_in_the_same_transaction(db, pool, settings):
    message = sending(db, pool, settings)
    later = NOW + timedelta(seconds=3)

    stored = delivery.record_outcome(
        pool, message, Decision(Verdict.SENT), answer(201, "x" * 5000), later, NINE
    )

    sent = db.execute(
        "SELECT *, xmin::text AS tx FROM message_logs WHERE id = %s", (message["id"],)
    ).fetchone()
    [planned] = db.execute(
        "SELECT occasion_date, status, xmin::text AS tx FROM message_logs"
        " WHERE user_id = %s AND id <> %s",
        (message["user_id"], message["id"]),
    )
    assert stored is True
    assert sent["status"] == "SENT"
    assert sent["actual_send_time"] == later
    assert sent["api_response_code"] == 201
    assert sent["api_response_body"] == "x" * 2000
    assert sent["locked_until"] is None
    assert (planned["occasion_date"], planned["status"]) == (NEXT_YEAR, "SCHEDULED")
    assert planned["tx"] == sent["tx"]


def test_a_retry_outcome_makes_the_message_retrying_and_counts_an_attempt(db, pool, settings):
    message = sending(db, pool, settings)
    later = NOW + timedelta(seconds=3)
    next_attempt = NOW + timedelta(minutes=1)

    decision = Decision(Verdict.RETRY, next_attempt, reason="provider answered 503")

    stored = delivery.record_outcome(pool, message, decision, answer(503, "busy"), later, NINE)

    retrying = row(db, message["id"])
    assert stored is True
    assert retrying["status"] == "RETRYING"
    assert retrying["retry_count"] == message["retry_count"] + 1
    assert retrying["next_attempt_at"] == next_attempt
    assert retrying["last_retry_at"] == later
    assert retrying["locked_until"] is None
    kept = (retrying["api_response_code"], retrying["error_message"])
    assert kept == (503, "provider answered 503")


def test_a_retry_that_does_not_count_as_an_attempt_keeps_the_retry_count(db, pool, settings):
    message = sending(db, pool, settings)
    next_attempt = NOW + timedelta(seconds=30)
    decision = Decision(
        Verdict.RETRY, next_attempt, counts_as_attempt=False, reason="provider circuit breaker open"
    )

    delivery.record_outcome(pool, message, decision, None, NOW, NINE)

    postponed = row(db, message["id"])
    assert postponed["status"] == "RETRYING"
    assert postponed["next_attempt_at"] == next_attempt
    assert postponed["retry_count"] == message["retry_count"]
    assert postponed["last_retry_at"] is None
    assert postponed["error_message"] == "provider circuit breaker open"


def test_a_failed_outcome_keeps_the_answer_and_plans_next_year(db, pool, settings):
    message = sending(db, pool, settings)

    decision = Decision(Verdict.FAIL, reason="provider answered 422")
    refused = ChannelAnswer(Outcome.REFUSED, code=422, detail='{"error": "bad email"}')

    stored = delivery.record_outcome(pool, message, decision, refused, NOW, NINE)

    failed = row(db, message["id"])
    assert stored is True
    assert failed["status"] == "FAILED"
    assert failed["api_response_code"] == 422
    assert failed["api_response_body"] == '{"error": "bad email"}'
    assert failed["error_message"] == "provider answered 422"
    assert failed["locked_until"] is None
    assert scheduled_dates(db, message["user_id"]) == [NEXT_YEAR]


@pytest.mark.parametrize(
    "decision",
    [
        Decision(Verdict.SENT),
        Decision(Verdict.RETRY, next_attempt_at=NOW + timedelta(minutes=10)),
        Decision(Verdict.FAIL),
    ],
    ids=["sent", "retry", "fail"],
)
def test_an_outcome_for_a_message_no_longer_sending_changes_nothing(db, pool, settings, decision):
    message = sending(db, pool, settings)
    later = NOW + settings.sending_lease + timedelta(seconds=1)
    dispatch.recover_stale(pool, Recorder(), later, settings)  # the lease is taken over
    before = db.execute("SELECT * FROM message_logs ORDER BY id").fetchall()

    stored = delivery.record_outcome(pool, message, decision, answer(500, "late"), later, NINE)

    assert stored is False
    assert before[0]["status"] == "QUEUED"
    assert db.execute("SELECT * FROM message_logs ORDER BY id").fetchall() == before


def test_dispatch_publishes_each_row_with_its_occasion_date(db, pool, settings):
    message_id = add_message(db)
    enqueue = Recorder()

    dispatch.dispatch_due(pool, enqueue, NOW, settings)

    assert (enqueue.ids, enqueue.dates) == ([message_id], [TODAY])


def test_begin_send_with_the_messages_date_reads_its_partition_only(db, pool, settings):
    message_id = add_message(db, status="QUEUED", locked_until=NOW + timedelta(minutes=5))

    elsewhere = take(pool, message_id, NOW, settings, occasion_date=NEXT_YEAR)
    taken = take(pool, message_id, NOW, settings, occasion_date=TODAY)

    assert elsewhere is None
    assert taken is not None and taken["status"] == "SENDING"


# begin_sends and record_sends: the batch forms a worker's threads share


def test_one_take_statement_takes_many_greetings_and_a_repeated_id_only_once(db, pool, settings):
    lease = NOW + timedelta(minutes=5)
    first, second = (add_message(db, status="QUEUED", locked_until=lease) for _ in range(2))
    targets = [(first, TODAY), (second, None), (first, TODAY), (10**12, TODAY)]

    taken = delivery.begin_sends(
        pool,
        targets,
        NOW,
        lease=settings.sending_lease,
        max_lateness=settings.max_lateness,
        send_time=NINE,
    )

    assert [t["id"] if t else None for t in taken] == [first, second, None, None]
    assert {t["status"] for t in taken if t} == {"SENDING"}
    assert statuses(db, [first, second]) == {"SENDING"}


def test_one_record_commits_many_sends_and_plans_each_users_next_year(db, pool, settings):
    held = [sending(db, pool, settings) for _ in range(3)]
    stolen = {**held[2], "locked_until": held[2]["locked_until"] + timedelta(seconds=1)}
    later = NOW + timedelta(seconds=2)
    sends = [(held[0], answer(200, "a"), later), (held[1], answer(201, "b"), later)]

    recorded = delivery.record_sends(pool, [*sends, (stolen, answer(200, "c"), later)], NINE)

    assert recorded == [True, True, False]
    assert [row(db, m["id"])["status"] for m in held] == ["SENT", "SENT", "SENDING"]
    assert row(db, held[1]["id"])["api_response_code"] == 201
    assert [scheduled_dates(db, m["user_id"]) for m in held] == [[NEXT_YEAR], [NEXT_YEAR], []]


# publishing a claimed batch from several threads


def test_publishers_threads_publish_every_claimed_row_once(db, pool, settings):
    ids = {add_message(db) for _ in range(7)}
    enqueue = Recorder()
    threads: set[str] = set()

    def publish(message_id: int, occasion_date: date) -> None:
        threads.add(threading.current_thread().name)
        enqueue(message_id, occasion_date)

    with ThreadPoolExecutor(3, thread_name_prefix="publish") as publishers:
        result = dispatch.dispatch_due(pool, publish, NOW, settings, publishers)

    assert result.queued == 7
    assert sorted(enqueue.ids) == sorted(ids)
    assert threads and all(name.startswith("publish") for name in threads)


def test_a_failed_publish_is_raised_after_the_others_were_tried(db, pool, settings):
    ids = [add_message(db) for _ in range(4)]
    published: list[int] = []

    def publish(message_id: int, occasion_date: date) -> None:
        if message_id == ids[0]:
            raise ConnectionError("broker away")
        published.append(message_id)

    with ThreadPoolExecutor(2) as publishers, pytest.raises(ConnectionError):
        dispatch.dispatch_due(pool, publish, NOW, settings, publishers)

    assert sorted(published) == sorted(ids[1:])
    assert statuses(db, ids) == {"QUEUED"}  # claimed and committed: recovery re-publishes
