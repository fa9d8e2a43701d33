"""Calendar rules for occasions, in pure Python (the reference for the SQL planner).

- Feb 29 occasions fall on Feb 28 in non-leap years: the greeting stays in the
  month people celebrate in, and is never a day late.
- The greeting is due at SEND_TIME local time on the occasion date. A local time
  that does not exist (clocks jump forward) is moved forward by the gap; one that
  occurs twice (clocks fall back) is taken at its first, earlier instant. Both are
  what `zoneinfo` gives for fold=0.
- The next occurrence is the first occasion date on or after the user's local
  today, so someone created on their birthday after 09:00 still gets today's.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

BIRTHDAY = "BIRTHDAY"
ANNIVERSARY = "ANNIVERSARY"

_GREETINGS = {
    BIRTHDAY: "Hey, {first_name} {last_name} it's your birthday",
    ANNIVERSARY: "Hey, {first_name} {last_name} happy anniversary",
}


@dataclass(frozen=True)
class Occurrence:
    occasion_date: date
    scheduled_send_time: datetime  # aware, UTC


def occasion_in_year(original: date, year: int) -> date:
    """The date the occasion is celebrated in `year` (Feb 29 -> Feb 28 when not leap)."""
    if original.month == 2 and original.day == 29 and not calendar.isleap(year):
        return date(year, 2, 28)
    return original.replace(year=year)


def send_instant(occasion_date: date, zone: ZoneInfo, send_time: time) -> datetime:
    """SEND_TIME local on that date, as a UTC instant (gaps move forward, folds take the first)."""
    local = datetime.combine(occasion_date, send_time).replace(tzinfo=zone, fold=0)
    return local.astimezone(UTC)


def next_occasion_date(original: date, local_today: date) -> date:
    """The first date the occasion is celebrated on or after `local_today`."""
    occasion = occasion_in_year(original, local_today.year)
    if occasion < local_today:
        occasion = occasion_in_year(original, local_today.year + 1)
    return occasion


def previous_occasion_date(original: date, local_today: date) -> date | None:
    """The last celebration strictly before `local_today`, None if not after `original`."""
    occasion = occasion_in_year(original, local_today.year)
    if occasion >= local_today:
        occasion = occasion_in_year(original, local_today.year - 1)
    return occasion if occasion > original else None


# The whole rule stated in Python. The service plans in SQL (repositories/messages.py);
# this stays as the reference the unit tests pin the rule on (DST nights, Feb 29,
# +14:00 and -12:00 zones), composed of the two pieces the service itself uses.
def next_occurrence(original: date, zone: ZoneInfo, now: datetime, send_time: time) -> Occurrence:
    """The first occurrence whose local date is today or later, as seen in `zone` at `now`."""
    occasion = next_occasion_date(original, now.astimezone(zone).date())
    return Occurrence(occasion, send_instant(occasion, zone, send_time))


def greeting(message_type: str, first_name: str, last_name: str) -> str:
    """The text sent for an occasion."""
    return _GREETINGS[message_type].format(first_name=first_name, last_name=last_name)


def idempotency_key(user_id: object, message_type: str, occasion_date: date) -> str:
    """`{user_id}:{message_type}:{occasion_date}`, the key the provider deduplicates on."""
    return f"{user_id}:{message_type}:{occasion_date.isoformat()}"
