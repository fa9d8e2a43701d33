"""The birth dates the end-to-end and fault suites give their users: a birthday due
today, whatever today is (Feb 29 included). Pure Python, no service touched."""

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from domain.occasions import next_occurrence
from tests.delivery_stack import birth_date_celebrated_on, birthday_today

NINE = time(9, 0)


def test_on_a_leap_day_the_birthday_due_today_is_a_feb_29_of_a_leap_year():
    noon_on_leap_day = datetime(2028, 2, 29, 12, 0, tzinfo=UTC)

    born = birthday_today(noon_on_leap_day, "UTC", 1990)

    assert born == date(1988, 2, 29)
    occurrence = next_occurrence(born, ZoneInfo("UTC"), noon_on_leap_day, NINE)
    assert occurrence.occasion_date == date(2028, 2, 29)


def test_the_birthday_due_today_follows_the_zones_local_date():
    # 12:00 UTC on Feb 29 is already Mar 1 at +14:00 in Kiritimati
    noon_on_leap_day = datetime(2028, 2, 29, 12, 0, tzinfo=UTC)

    assert birthday_today(noon_on_leap_day, "Pacific/Kiritimati", 1985) == date(1985, 3, 1)


@pytest.mark.parametrize(
    "today",
    [date(2027, 2, 28), date(2028, 2, 28), date(2028, 2, 29), date(2028, 3, 1), date(2026, 12, 31)],
)
def test_the_birth_date_is_celebrated_on_the_given_day_by_the_services_rule(today):
    born = birth_date_celebrated_on(today, 1985)

    local_noon = datetime.combine(today, time(12, 0), tzinfo=UTC)
    assert next_occurrence(born, ZoneInfo("UTC"), local_noon, NINE).occasion_date == today
    assert 1982 <= born.year <= 1985
