"""The occasion registry and its calendar rules (domain/occasions.py): pure Python."""

import uuid
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from domain.occasions import (
    OCCASIONS,
    idempotency_key,
    next_occasion_date,
    next_occurrence,
    occasion_in_year,
    previous_occasion_date,
    send_instant,
)

NINE = time(9, 0)
NEW_YORK = ZoneInfo("America/New_York")
KIRITIMATI = ZoneInfo("Pacific/Kiritimati")
PAGO_PAGO = ZoneInfo("Pacific/Pago_Pago")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# Feb 29


@pytest.mark.parametrize("year", [2025, 2026, 2027, 2100])
def test_feb_29_falls_on_feb_28_in_a_non_leap_year(year):
    assert occasion_in_year(date(2000, 2, 29), year) == date(year, 2, 28)


@pytest.mark.parametrize("year", [2024, 2028, 2400])
def test_feb_29_stays_feb_29_in_a_leap_year(year):
    assert occasion_in_year(date(2000, 2, 29), year) == date(year, 2, 29)


def test_an_ordinary_date_keeps_its_month_and_day_in_another_year():
    assert occasion_in_year(date(1990, 2, 28), 2027) == date(2027, 2, 28)


def test_a_feb_29_birthday_is_next_celebrated_on_feb_28_when_the_coming_year_is_not_leap():
    assert next_occasion_date(date(2004, 2, 29), date(2026, 3, 1)) == date(2027, 2, 28)


# Send instant


@pytest.mark.parametrize(
    ("zone", "occasion", "expected"),
    [
        ("America/New_York", date(2026, 1, 15), utc(2026, 1, 15, 14, 0)),  # EST, -05:00
        ("America/New_York", date(2026, 7, 15), utc(2026, 7, 15, 13, 0)),  # EDT, -04:00
        ("Asia/Kathmandu", date(2026, 7, 15), utc(2026, 7, 15, 3, 15)),  # +05:45
        ("Pacific/Kiritimati", date(2026, 7, 15), utc(2026, 7, 14, 19, 0)),  # +14
        ("Etc/GMT+12", date(2026, 7, 15), utc(2026, 7, 15, 21, 0)),  # -12
        ("Pacific/Pago_Pago", date(2026, 7, 15), utc(2026, 7, 15, 20, 0)),  # -11
    ],
)
def test_send_instant_is_nine_local_as_a_utc_instant(zone, occasion, expected):
    instant = send_instant(occasion, ZoneInfo(zone), NINE)

    assert instant == expected
    assert instant.utcoffset().total_seconds() == 0


def test_a_send_time_inside_a_dst_gap_moves_forward_by_the_gap():
    # 02:30 does not exist on 2026-03-08 in New York: clocks jump from 02:00 EST to 03:00 EDT.
    instant = send_instant(date(2026, 3, 8), NEW_YORK, time(2, 30))

    assert instant == utc(2026, 3, 8, 7, 30)
    assert instant.astimezone(NEW_YORK).time() == time(3, 30)


def test_an_ambiguous_send_time_takes_the_first_earlier_instant():
    # 01:30 happens twice on 2026-11-01 in New York: first in EDT (05:30 UTC), then EST.
    assert send_instant(date(2026, 11, 1), NEW_YORK, time(1, 30)) == utc(2026, 11, 1, 5, 30)


# Next occurrence


def test_a_birthday_today_in_the_users_zone_is_due_today_even_after_nine_local():
    now = utc(2026, 3, 4, 20, 0)  # 15:00 EST on Mar 4

    occurrence = next_occurrence(date(1990, 3, 4), NEW_YORK, now, NINE)

    assert occurrence.occasion_date == date(2026, 3, 4)
    assert occurrence.scheduled_send_time == utc(2026, 3, 4, 14, 0)


def test_a_birthday_yesterday_is_next_due_next_year():
    now = utc(2026, 3, 4, 20, 0)  # Mar 4 in New York

    occurrence = next_occurrence(date(1990, 3, 3), NEW_YORK, now, NINE)

    assert occurrence.occasion_date == date(2027, 3, 3)
    assert occurrence.scheduled_send_time == utc(2027, 3, 3, 14, 0)


@pytest.mark.parametrize(
    ("zone", "now", "expected"),
    [
        # 2027-03-04 11:00 UTC: already Mar 5 01:00 in Kiritimati, Mar 4 00:00 in Pago Pago.
        (KIRITIMATI, utc(2027, 3, 4, 11, 0), date(2028, 3, 4)),
        (PAGO_PAGO, utc(2027, 3, 4, 11, 0), date(2027, 3, 4)),
        # Kiritimati's Mar 4 ends at 10:00 UTC.
        (KIRITIMATI, utc(2027, 3, 4, 9, 59), date(2027, 3, 4)),
        (KIRITIMATI, utc(2027, 3, 4, 10, 0), date(2028, 3, 4)),
        # Pago Pago's Mar 4 starts at 11:00 UTC on Mar 4 and ends at 11:00 UTC on Mar 5.
        (PAGO_PAGO, utc(2027, 3, 4, 10, 59), date(2027, 3, 4)),
        (PAGO_PAGO, utc(2027, 3, 5, 10, 59), date(2027, 3, 4)),
        (PAGO_PAGO, utc(2027, 3, 5, 11, 0), date(2028, 3, 4)),
    ],
)
def test_the_next_occurrence_follows_the_local_date_not_the_utc_date(zone, now, expected):
    assert next_occurrence(date(1990, 3, 4), zone, now, NINE).occasion_date == expected


def test_the_same_instant_gives_different_occasions_on_either_side_of_the_date_line():
    now = utc(2027, 3, 4, 11, 0)
    original = date(1990, 3, 4)

    in_kiritimati = next_occurrence(original, KIRITIMATI, now, NINE)
    in_pago_pago = next_occurrence(original, PAGO_PAGO, now, NINE)

    assert in_kiritimati.occasion_date == date(2028, 3, 4)
    assert in_kiritimati.scheduled_send_time == utc(2028, 3, 3, 19, 0)
    assert in_pago_pago.occasion_date == date(2027, 3, 4)
    assert in_pago_pago.scheduled_send_time == utc(2027, 3, 4, 20, 0)


# Previous occasion


def test_previous_occasion_is_the_last_celebration_strictly_before_local_today():
    assert previous_occasion_date(date(1990, 3, 4), date(2026, 3, 4)) == date(2025, 3, 4)
    assert previous_occasion_date(date(1990, 3, 4), date(2026, 3, 5)) == date(2026, 3, 4)


def test_previous_occasion_of_a_feb_29_date_is_feb_28_in_a_non_leap_year():
    assert previous_occasion_date(date(2004, 2, 29), date(2026, 3, 1)) == date(2026, 2, 28)


@pytest.mark.parametrize(
    ("original", "local_today"),
    [
        (date(2026, 3, 4), date(2026, 3, 5)),  # would be the original date itself
        (date(2026, 3, 4), date(2026, 12, 31)),  # still the original date itself
        (date(2026, 3, 4), date(2026, 1, 1)),  # would be 2025-03-04, before the original
        (date(2025, 3, 4), date(2026, 3, 4)),  # strictly before today is the original
    ],
)
def test_previous_occasion_is_none_when_on_or_before_the_original_date(original, local_today):
    assert previous_occasion_date(original, local_today) is None


# Greeting and idempotency key


def test_birthday_greeting_text_is_exact():
    assert (
        OCCASIONS.by_type("BIRTHDAY").greeting("Ada", "Lovelace")
        == "Hey, Ada Lovelace it's your birthday"
    )


def test_anniversary_greeting_names_the_person():
    assert (
        OCCASIONS.by_type("ANNIVERSARY").greeting("Ada", "Lovelace")
        == "Hey, Ada Lovelace happy anniversary"
    )


def test_idempotency_key_is_user_type_and_iso_date():
    user_id = uuid.UUID("0b7e1c4e-3f2a-4d5b-9c8d-1a2b3c4d5e6f")

    key = idempotency_key(user_id, "BIRTHDAY", date(2026, 1, 5))

    assert key == "0b7e1c4e-3f2a-4d5b-9c8d-1a2b3c4d5e6f:BIRTHDAY:2026-01-05"


# The registry


def test_the_registry_names_each_occasions_type_and_date_field_in_order():
    assert OCCASIONS.types == ("BIRTHDAY", "ANNIVERSARY")
    assert OCCASIONS.date_fields == ("birthday_date", "anniversary_date")
    assert OCCASIONS.required_message == "a birthday_date or an anniversary_date is required"


def test_an_unknown_message_type_is_an_error_not_another_occasion():
    from domain.occasions import UnknownOccasion

    with pytest.raises(UnknownOccasion):
        OCCASIONS.by_type("WORK_ANNIVERSARY")


@pytest.mark.parametrize(
    ("message_type", "date_field", "text"),
    [
        ("birthday", "birthday_date", "Hey"),  # not an upper-case name
        ("BIRTHDAY'; --", "birthday_date", "Hey"),
        ("BIRTHDAY", "birthday date", "Hey"),  # not a column name
        ("BIRTHDAY", "birthday_date", "Hey, {nickname}"),  # unknown variable
    ],
)
def test_an_occasion_with_a_name_sql_could_not_hold_or_an_unknown_variable_is_refused(
    message_type, date_field, text
):
    from domain.occasions import Occasion

    with pytest.raises(ValueError):
        Occasion(message_type=message_type, date_field=date_field, default_text=text)


def test_two_occasions_may_not_share_a_type_or_a_date_field():
    from domain.occasions import Occasion, Occasions

    first = Occasion("BIRTHDAY", "birthday_date", "Hey")
    with pytest.raises(ValueError):
        Occasions(first, Occasion("BIRTHDAY", "other_date", "Hey"))
    with pytest.raises(ValueError):
        Occasions(first, Occasion("OTHER", "birthday_date", "Hey"))


def test_a_mar_1_occasion_on_feb_29_falls_on_mar_1_in_a_common_year():
    from domain.occasions import LeapDay, occasion_in_year

    assert occasion_in_year(date(2016, 2, 29), 2027, LeapDay.MAR_1) == date(2027, 3, 1)
    assert occasion_in_year(date(2016, 2, 29), 2028, LeapDay.MAR_1) == date(2028, 2, 29)
    assert occasion_in_year(date(2016, 2, 29), 2027) == date(2027, 2, 28)
