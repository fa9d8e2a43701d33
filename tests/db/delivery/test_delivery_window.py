"""The recipient's delivery window (DELIVERY_WINDOW): dispatch and the worker's take at
chosen instants, in the user's zone, on the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from config import Settings
from delivery import attempts as delivery
from delivery import dispatch
from repositories import message_lifecycle
from tests import factories


def local(zone: str, *parts: int) -> datetime:
    """An instant given by its local time in `zone`."""
    return datetime(*parts, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def settings_for(
    db_url: str, window: str = "08:00-21:00", lateness: str = "48h", batch: str = "500"
) -> Settings:
    return Settings.from_env(
        {"DELIVERY_WINDOW": window, "MAX_LATENESS": lateness, "DISPATCH_BATCH_SIZE": batch},
        database_url=db_url,
    )


class Queue:
    """The dispatcher's `enqueue`: the ids it was handed."""

    def __init__(self) -> None:
        self.ids: list[int] = []

    def __call__(self, message_id: int, occasion_date: date | None = None) -> None:
        self.ids.append(message_id)


def waiting_greeting(db, zone: str, day: date, *, status: str = "SCHEDULED", due=None) -> dict:
    """A birthday greeting at 09:00 local on `day` in `zone`, waiting (due at `due`)."""
    user = factories.make_user(db, timezone=zone, birthday=day.replace(year=1990))
    scheduled = local(zone, day.year, day.month, day.day, 9, 0)
    return factories.make_message(
        db,
        user,
        status=status,
        scheduled=scheduled,
        occasion_date=day,
        next_attempt_at=due or scheduled,
    )


def state(db, greeting: dict) -> dict:
    return db.execute(
        "SELECT status, next_attempt_at, retry_count FROM message_logs WHERE id = %s",
        (greeting["id"],),
    ).fetchone()


def dispatch_at(pool, settings: Settings, now: datetime) -> list[int]:
    queue = Queue()
    dispatch.dispatch_due(pool, queue, now, settings)
    return queue.ids


DAY = date(2026, 12, 7)
TOKYO = "Asia/Tokyo"


def test_after_an_outage_until_2330_local_the_greeting_waits_for_0800_next_day(db, pool, db_url):
    # Given a greeting due at 09:00 in Tokyo, and nothing dispatched until 23:30 there
    settings = settings_for(db_url)
    greeting = waiting_greeting(db, TOKYO, DAY)
    # When dispatch runs at 23:30 local, outside the window
    assert dispatch_at(pool, settings, local(TOKYO, 2026, 12, 7, 23, 30)) == []
    # Then it waits for 08:00 the next day, still SCHEDULED, no retry used
    row = state(db, greeting)
    assert row["status"] == "SCHEDULED"
    assert row["next_attempt_at"] == local(TOKYO, 2026, 12, 8, 8, 0)
    assert row["retry_count"] == 0
    # Nothing at 07:59; at 08:00 it is queued
    assert dispatch_at(pool, settings, local(TOKYO, 2026, 12, 8, 7, 59)) == []
    assert dispatch_at(pool, settings, local(TOKYO, 2026, 12, 8, 8, 0)) == [greeting["id"]]


def test_a_retry_due_at_night_waits_for_the_morning_within_the_deadline(db, pool, db_url):
    # Given a provider retry due at 20:00 local and an outage from then until 02:00
    settings = settings_for(db_url)
    greeting = waiting_greeting(
        db, TOKYO, DAY, status="RETRYING", due=local(TOKYO, 2026, 12, 7, 20, 0)
    )
    # When dispatch runs again at 02:00 local
    assert dispatch_at(pool, settings, local(TOKYO, 2026, 12, 8, 2, 0)) == []
    # Then it waits for 08:00, inside the 48 h deadline, and goes then
    assert state(db, greeting)["next_attempt_at"] == local(TOKYO, 2026, 12, 8, 8, 0)
    assert dispatch_at(pool, settings, local(TOKYO, 2026, 12, 8, 8, 0)) == [greeting["id"]]


def test_a_greeting_whose_deadline_comes_before_the_window_opens_expires_at_it(db, pool, db_url):
    # Given a 20 h deadline: 09:00 + 20 h = 05:00 next day, before the window opens
    settings = settings_for(db_url, lateness="20h")
    greeting = waiting_greeting(
        db, TOKYO, DAY, status="RETRYING", due=local(TOKYO, 2026, 12, 7, 20, 0)
    )
    # When dispatch runs at 02:00, then after the deadline
    assert dispatch_at(pool, settings, local(TOKYO, 2026, 12, 8, 2, 0)) == []
    assert state(db, greeting)["status"] == "RETRYING"
    assert dispatch_at(pool, settings, local(TOKYO, 2026, 12, 8, 5, 1)) == []
    # Then it is EXPIRED at its deadline, never sent at night
    assert state(db, greeting)["status"] == "EXPIRED"


@pytest.mark.parametrize(
    "zone", ["Pacific/Kiritimati", "Etc/GMT+12", "Asia/Kathmandu", "America/St_Johns"]
)
def test_the_window_edges_are_read_in_the_users_own_zone(db, pool, db_url, zone):
    # +14:00, -12:00, +05:45 and -03:30: the edges are local, whatever the offset
    settings = settings_for(db_url)
    early = waiting_greeting(db, zone, DAY, due=local(zone, 2026, 12, 7, 7, 59))
    assert dispatch_at(pool, settings, local(zone, 2026, 12, 7, 7, 59)) == []
    assert state(db, early)["next_attempt_at"] == local(zone, 2026, 12, 7, 8, 0)
    assert dispatch_at(pool, settings, local(zone, 2026, 12, 7, 8, 0)) == [early["id"]]

    late = waiting_greeting(
        db, zone, DAY + timedelta(days=1), status="RETRYING", due=local(zone, 2026, 12, 8, 20, 59)
    )
    assert dispatch_at(pool, settings, local(zone, 2026, 12, 8, 20, 59)) == [late["id"]]
    later = waiting_greeting(
        db, zone, DAY + timedelta(days=2), status="RETRYING", due=local(zone, 2026, 12, 9, 21, 0)
    )
    assert dispatch_at(pool, settings, local(zone, 2026, 12, 9, 21, 0)) == []
    assert state(db, later)["next_attempt_at"] == local(zone, 2026, 12, 10, 8, 0)


def test_an_opening_inside_a_spring_forward_gap_is_the_first_instant_after_it(db, pool, db_url):
    # Given a window opening at 02:30, which Berlin skips on 2026-03-29 (02:00 -> 03:00)
    settings = settings_for(db_url, window="02:30-21:00")
    zone = "Europe/Berlin"
    night = date(2026, 3, 29)
    greeting = waiting_greeting(
        db, zone, night, status="RETRYING", due=local(zone, 2026, 3, 29, 1, 30)
    )
    # When dispatch runs at 01:30 local
    assert dispatch_at(pool, settings, local(zone, 2026, 3, 29, 1, 30)) == []
    # Then it waits for 03:00 CEST, the first instant after the gap (01:00 UTC)
    assert state(db, greeting)["next_attempt_at"] == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert dispatch_at(pool, settings, datetime(2026, 3, 29, 1, 0, tzinfo=UTC)) == [greeting["id"]]


def test_on_a_spring_forward_night_the_usual_opening_is_its_local_time(db, pool, db_url):
    settings = settings_for(db_url)
    zone = "America/New_York"
    greeting = waiting_greeting(
        db, zone, date(2026, 3, 8), status="RETRYING", due=local(zone, 2026, 3, 8, 1, 30)
    )

    assert dispatch_at(pool, settings, local(zone, 2026, 3, 8, 1, 30)) == []
    assert state(db, greeting)["next_attempt_at"] == local(zone, 2026, 3, 8, 8, 0)


def test_with_the_window_off_a_greeting_goes_at_any_hour(db, pool, db_url):
    settings = settings_for(db_url, window="off")
    greeting = waiting_greeting(db, TOKYO, DAY)

    assert dispatch_at(pool, settings, local(TOKYO, 2026, 12, 8, 3, 0)) == [greeting["id"]]


def take_at(db, pool, settings: Settings, now: datetime, locked_until: datetime) -> dict:
    """A Tokyo greeting QUEUED until `locked_until`, taken by a worker at `now`."""
    greeting = waiting_greeting(db, TOKYO, DAY, status="QUEUED")
    db.execute(
        "UPDATE message_logs SET locked_until = %s WHERE id = %s", (locked_until, greeting["id"])
    )
    [taken] = delivery.begin_sends(
        pool,
        [(greeting["id"], DAY)],
        now,
        lease=settings.sending_lease,
        max_lateness=settings.max_lateness,
        send_time=time(9),
        window=settings.delivery_hours,
    )
    return taken


def test_a_greeting_taken_outside_the_window_says_when_it_opens(db, pool, db_url):
    # Given a greeting queued (an operator's retry, a redelivered message), taken at 22:00
    taken = take_at(
        db,
        pool,
        settings_for(db_url),
        local(TOKYO, 2026, 12, 7, 22, 0),
        locked_until=local(TOKYO, 2026, 12, 7, 22, 30),
    )
    # Then the row says when the window opens (the worker postpones it until then)
    assert taken["window_opens_at"] == local(TOKYO, 2026, 12, 8, 8, 0)


def test_a_greeting_taken_inside_the_window_has_no_opening_to_wait_for(db, pool, db_url):
    taken = take_at(
        db,
        pool,
        settings_for(db_url),
        local(TOKYO, 2026, 12, 7, 9, 30),
        locked_until=local(TOKYO, 2026, 12, 7, 10, 0),
    )

    assert taken["status"] == "SENDING" and taken["window_opens_at"] is None


def test_batches_read_every_due_greeting_once_inside_and_outside_mixed(db, pool, db_url):
    # Given greetings due now, inside and outside their window, more than a batch of each
    settings = settings_for(db_url, batch="2")
    now = local(TOKYO, 2026, 12, 7, 23, 0)  # 23:00 in Tokyo, 14:00 UTC, 09:00 in New York
    outside = [waiting_greeting(db, TOKYO, DAY, due=now) for _ in range(3)]
    inside = [waiting_greeting(db, "America/New_York", DAY, due=now) for _ in range(3)]

    queued = dispatch_at(pool, settings, now)

    # Then every one inside is queued, and every one outside waits for 08:00 in Tokyo
    assert sorted(queued) == sorted(g["id"] for g in inside)
    opening = local(TOKYO, 2026, 12, 8, 8, 0)
    assert {state(db, g)["next_attempt_at"] for g in outside} == {opening}


def test_a_due_greeting_another_transaction_holds_is_left_and_dispatch_still_ends(db, pool, db_url):
    # Given two batches' worth of due greetings, outside and inside, one of them locked
    settings = settings_for(db_url, batch="2")
    now = local(TOKYO, 2026, 12, 7, 23, 0)
    outside = [waiting_greeting(db, TOKYO, DAY, due=now) for _ in range(3)]
    inside = [waiting_greeting(db, "America/New_York", DAY, due=now) for _ in range(2)]
    with psycopg.connect(db_url) as holder:
        holder.execute("SELECT 1 FROM message_logs WHERE id = %s FOR UPDATE", (outside[0]["id"],))

        # When dispatch runs while it is held
        queued = dispatch_at(pool, settings, now)

    # Then the others are handled, and the held one is still due for the next dispatch
    assert sorted(queued) == sorted(g["id"] for g in inside)
    opening = local(TOKYO, 2026, 12, 8, 8, 0)
    assert [state(db, g)["next_attempt_at"] for g in outside[1:]] == [opening, opening]
    assert state(db, outside[0])["next_attempt_at"] == now
    assert dispatch_at(pool, settings, now) == []
    assert state(db, outside[0])["next_attempt_at"] == opening


def test_the_zones_openings_are_read_once_and_only_when_a_greeting_is_due(db, pool, db_url):
    window = settings_for(db_url).delivery_hours
    now = local(TOKYO, 2026, 12, 7, 23, 0)
    assert message_lifecycle.window_openings(db, now, window) == {}

    waiting_greeting(db, TOKYO, DAY, due=now)
    openings = message_lifecycle.window_openings(db, now, window)

    # 23:00 in Tokyo and 02:00 at UTC+12: outside, opening at 08:00 local; 09:00 in
    # New York: inside, absent
    assert openings[TOKYO] == local(TOKYO, 2026, 12, 8, 8, 0)
    assert openings["Etc/GMT-12"] == datetime(2026, 12, 7, 20, 0, tzinfo=UTC)
    assert "America/New_York" not in openings
