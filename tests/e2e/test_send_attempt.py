"""One send attempt in this process (the actor called directly), on the real PostgreSQL,
Redis and local provider: what happens between the take and the provider call."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis

from channels.guards import RATE_LIMIT_KEY
from tests import factories

pytestmark = pytest.mark.timeout(60)


def queued_greeting(db, seconds_to_deadline: float, max_lateness: timedelta) -> dict:
    """A QUEUED greeting whose deadline falls `seconds_to_deadline` from the database's now."""
    database_now = db.execute("SELECT statement_timestamp() AS now").fetchone()["now"]
    scheduled = database_now - max_lateness + timedelta(seconds=seconds_to_deadline)
    occasion = scheduled.astimezone(UTC).date()
    user = factories.make_user(
        db,
        timezone="UTC",
        birthday=occasion.replace(year=1992),  # a leap year: Feb 29 too
        email=f"deadline-{uuid.uuid4().hex[:8]}@example.com",
    )
    return factories.make_message(
        db,
        user,
        status="QUEUED",
        scheduled=scheduled,
        occasion_date=occasion,
        locked_until=database_now + timedelta(minutes=5),
    )


def fill_rate_limit(store: redis.Redis, seconds: int, per_second: int) -> None:
    """Use up the provider's rate limit for this second and the next `seconds`."""
    second = int(store.time()[0])
    for offset in range(seconds + 1):
        store.set(f"{RATE_LIMIT_KEY}:{second + offset}", per_second, ex=seconds + 5)


def test_a_greeting_whose_deadline_passes_while_it_waits_for_the_rate_limit_is_not_sent(
    db, worker, provider, store
):
    from tasks.send import send_greeting

    lateness = timedelta(hours=1)
    worker(
        MAX_LATENESS="1h",
        PROVIDER_RATE_LIMIT="1",
        PROVIDER_RATE_LIMIT_WAIT="20s",
        SENDING_LEASE="60s",
    )
    greeting = queued_greeting(db, seconds_to_deadline=1.5, max_lateness=lateness)
    # Taken in time, then held by the rate limit for about four seconds: past the deadline.
    fill_rate_limit(store, seconds=4, per_second=1)

    send_greeting(greeting["id"], greeting["occasion_date"].isoformat())

    row = db.execute("SELECT * FROM message_logs WHERE id = %s", (greeting["id"],)).fetchone()
    assert provider.requests_seen() == []
    assert row["status"] == "EXPIRED"
    assert "deadline" in row["error_message"]
    assert row["retry_count"] == 0


def zone_at_night(now: datetime) -> str:
    """A fixed-offset zone where it is between 01:00 and 06:59 at `now`."""
    for offset in range(-12, 15):
        name = f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT"
        if 1 <= now.astimezone(ZoneInfo(name)).hour <= 6:
            return name
    raise AssertionError("no zone is at night")


def test_a_greeting_taken_outside_the_recipients_window_waits_for_it_unsent(db, worker, provider):
    from tasks.send import send_greeting

    # Given a greeting queued for someone for whom it is the middle of the night
    worker(DELIVERY_WINDOW="08:00-21:00", SENDING_LEASE="60s")
    now = datetime.now(UTC)
    zone = zone_at_night(now)
    day = now.astimezone(ZoneInfo(zone)).date()
    if (day.month, day.day) == (2, 29):
        day = day.replace(day=28)
    user = factories.make_user(db, timezone=zone, birthday=day.replace(year=1992))
    greeting = factories.make_message(
        db,
        user,
        status="QUEUED",
        scheduled=now - timedelta(hours=1),
        occasion_date=day,
        locked_until=now + timedelta(minutes=5),
    )

    send_greeting(greeting["id"], day.isoformat())

    # Then nothing reached the provider, and it waits for 08:00 local, no retry used
    row = db.execute("SELECT * FROM message_logs WHERE id = %s", (greeting["id"],)).fetchone()
    opening = datetime.combine(day, time(8), tzinfo=ZoneInfo(zone))
    assert provider.requests_seen() == []
    assert row["status"] == "RETRYING" and row["retry_count"] == 0
    assert row["next_attempt_at"] == opening
    assert row["error_message"] == "outside the delivery window"
