"""The NOTIFY that wakes the scheduler (migration 0012) and its listener, on PostgreSQL.

Each write is committed (the notice goes out at commit) by the rolled-back `conn`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from config import Settings
from tasks.due_watch import DueWatch
from tests.factories import make_message, make_user


@pytest.fixture
def watch(settings):
    listener = DueWatch(settings)
    listener.wait(0)  # LISTEN before the writes
    yield listener
    listener.close()


def _greeting_due(conn, due_at: datetime, **fields) -> dict:
    return make_message(conn, make_user(conn), scheduled=due_at, **fields)


def test_a_greeting_planned_to_fall_due_within_the_hour_wakes_the_listener(conn, watch):
    _greeting_due(conn, datetime.now(UTC) + timedelta(minutes=10))
    conn.commit()
    started = time.monotonic()
    assert watch.wait(5) is True
    assert time.monotonic() - started < 4


def test_a_greeting_due_later_than_the_hour_wakes_nobody(conn, watch):
    _greeting_due(conn, datetime.now(UTC) + timedelta(hours=3))
    conn.commit()
    assert watch.wait(0.5) is False


def test_a_retry_due_soon_wakes_it_and_several_notices_make_one_wake(conn, watch):
    later = datetime.now(UTC) + timedelta(hours=3)
    message = _greeting_due(conn, later, status="SENDING")
    conn.commit()
    for seconds in (5, 6, 7):
        conn.execute(
            "UPDATE message_logs SET status = 'RETRYING', next_attempt_at = now() + %s"
            " WHERE id = %s",
            (timedelta(seconds=seconds), message["id"]),
        )
        conn.commit()
        conn.execute("UPDATE message_logs SET status = 'SENDING' WHERE id = %s", (message["id"],))
        conn.commit()
    assert watch.wait(5) is True
    assert watch.wait(0.3) is False  # the three notices were taken by the first wake


def test_a_rolled_back_write_wakes_nobody(conn, watch):
    _greeting_due(conn, datetime.now(UTC) + timedelta(minutes=1))
    conn.rollback()
    assert watch.wait(0.5) is False


def test_without_postgresql_the_listener_sleeps_instead_of_failing():
    away = Settings.from_env(
        {}, database_url="postgresql://postgres@127.0.0.1:1/none", db_connect_timeout=1
    )
    listener = DueWatch(away)
    started = time.monotonic()
    assert listener.wait(0.3) is False
    assert 0.25 <= time.monotonic() - started < 3
