"""The occasions greeted, declared once, and their calendar rules (pure Python, no I/O).

`OCCASIONS` is the registry: each occasion's message type (as message_logs and the API
name it), the users column holding its original date, its default text and where it
falls in a year without Feb 29. The API's user fields, planning's SQL, the worker's
"is it still on its date" test, the status page and the seed data all read it; an
unknown message type is an error everywhere, never another occasion's behaviour.

Adding an occasion: an entry below, and a migration adding its users column and its
name to message_logs' message_type CHECK (docs/extending.md).

Calendar rules (the SQL planner states the same in migrations 0005 and 0014; a test
holds the two together):
- A Feb 29 occasion falls on Feb 28 in a common year (`LeapDay.FEB_28`: the greeting
  stays in the month people celebrate in, never a day late), or on Mar 1 where an
  occasion says so (`LeapDay.MAR_1`).
- The greeting is due at SEND_TIME local on the occasion date. A local time that does
  not exist (clocks jump forward) is moved forward by the gap; one that occurs twice
  (clocks fall back) is taken at its first instant: what `zoneinfo` gives for fold=0.
- The next occurrence is the first occasion date on or after the user's local today,
  so someone created on their birthday after 09:00 still gets today's.
"""

from __future__ import annotations

import calendar
import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,31}")
_COLUMN = re.compile(r"[a-z][a-z0-9_]{0,62}")
# The variables a default text may use (templates, when edited, get more).
TEXT_VARIABLES = ("first_name", "last_name")


class LeapDay(enum.StrEnum):
    """Where a Feb 29 occasion falls in a year without one."""

    FEB_28 = "feb28"
    MAR_1 = "mar1"


class UnknownOccasion(ValueError):
    """A message type no occasion of the registry declares."""


@dataclass(frozen=True)
class Occasion:
    """One kind of day greeted."""

    message_type: str  # BIRTHDAY: message_logs.message_type, the API's `type`
    date_field: str  # birthday_date: the users column holding the original date
    default_text: str  # with {first_name} and {last_name}
    default_subject: str = "Greetings, {first_name}"  # the same variables
    leap_day: LeapDay = LeapDay.FEB_28

    def __post_init__(self) -> None:
        # These names are written into SQL text as identifiers and literals: only
        # plain names, checked here once, ever reach it.
        if not _NAME.fullmatch(self.message_type):
            raise ValueError(f"not an occasion name: {self.message_type!r}")
        if not _COLUMN.fullmatch(self.date_field):
            raise ValueError(f"not a users column: {self.date_field!r}")
        for text in (self.default_text, self.default_subject):
            used = set(re.findall(r"{(\w*)}", text))
            if not used <= set(TEXT_VARIABLES):
                raise ValueError(f"unknown variables in a default text: {sorted(used)}")

    def greeting(self, first_name: str, last_name: str) -> str:
        """The default text for this person."""
        return self.default_text.format(first_name=first_name, last_name=last_name)

    def in_year(self, original: date, year: int) -> date:
        """The date this occasion is celebrated in `year`."""
        return occasion_in_year(original, year, self.leap_day)


class Occasions:
    """The registry: the occasions greeted, in a fixed order."""

    def __init__(self, *occasions: Occasion) -> None:
        if not occasions:
            raise ValueError("an occasion registry needs at least one occasion")
        self._by_type = {occasion.message_type: occasion for occasion in occasions}
        fields = {occasion.date_field for occasion in occasions}
        if len(self._by_type) != len(occasions) or len(fields) != len(occasions):
            raise ValueError("each occasion needs a message type and a date field of its own")
        self.all = occasions

    def __iter__(self) -> Iterator[Occasion]:
        return iter(self.all)

    def __len__(self) -> int:
        return len(self.all)

    def __hash__(self) -> int:
        return hash(self.all)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Occasions) and other.all == self.all

    def __repr__(self) -> str:
        return f"Occasions{tuple(o.message_type for o in self.all)}"

    @property
    def types(self) -> tuple[str, ...]:
        """The message types, in the registry's order."""
        return tuple(occasion.message_type for occasion in self.all)

    @property
    def date_fields(self) -> tuple[str, ...]:
        """The users columns holding the occasions' dates, in the registry's order."""
        return tuple(occasion.date_field for occasion in self.all)

    @property
    def required_message(self) -> str:
        """What a user with none of the dates is told: "a birthday_date or an
        anniversary_date is required"."""
        named = (f"an {f}" if f[0] in "aeiou" else f"a {f}" for f in self.date_fields)
        return " or ".join(named) + " is required"

    def by_type(self, message_type: str) -> Occasion:
        """The occasion of a message type; UnknownOccasion for any other."""
        try:
            return self._by_type[message_type]
        except KeyError:
            raise UnknownOccasion(message_type) from None


OCCASIONS = Occasions(
    Occasion(
        message_type="BIRTHDAY",
        date_field="birthday_date",
        default_text="Hey, {first_name} {last_name} it's your birthday",
        default_subject="Happy birthday, {first_name}!",
    ),
    Occasion(
        message_type="ANNIVERSARY",
        date_field="anniversary_date",
        default_text="Hey, {first_name} {last_name} happy anniversary",
        default_subject="Happy anniversary, {first_name}!",
    ),
)


@dataclass(frozen=True)
class Occurrence:
    occasion_date: date
    scheduled_send_time: datetime  # aware, UTC


def occasion_in_year(original: date, year: int, leap_day: LeapDay = LeapDay.FEB_28) -> date:
    """The date an occasion is celebrated in `year` (Feb 29 per `leap_day` when not leap)."""
    if original.month == 2 and original.day == 29 and not calendar.isleap(year):
        return date(year, 2, 28) if leap_day is LeapDay.FEB_28 else date(year, 3, 1)
    return original.replace(year=year)


def send_instant(occasion_date: date, zone: ZoneInfo, send_time: time) -> datetime:
    """SEND_TIME local on that date, as a UTC instant (gaps move forward, folds take the first)."""
    local = datetime.combine(occasion_date, send_time).replace(tzinfo=zone, fold=0)
    return local.astimezone(UTC)


def next_occasion_date(
    original: date, local_today: date, leap_day: LeapDay = LeapDay.FEB_28
) -> date:
    """The first date the occasion is celebrated on or after `local_today`."""
    occasion = occasion_in_year(original, local_today.year, leap_day)
    if occasion < local_today:
        occasion = occasion_in_year(original, local_today.year + 1, leap_day)
    return occasion


def previous_occasion_date(
    original: date, local_today: date, leap_day: LeapDay = LeapDay.FEB_28
) -> date | None:
    """The last celebration strictly before `local_today`, None if not after `original`."""
    occasion = occasion_in_year(original, local_today.year, leap_day)
    if occasion >= local_today:
        occasion = occasion_in_year(original, local_today.year - 1, leap_day)
    return occasion if occasion > original else None


# The whole rule stated in Python. The service plans in SQL (repositories/occurrences.py);
# this stays as the reference the unit tests pin the rule on (DST nights, Feb 29,
# +14:00 and -12:00 zones), composed of the pieces the service itself uses.
def next_occurrence(
    original: date,
    zone: ZoneInfo,
    now: datetime,
    send_time: time,
    leap_day: LeapDay = LeapDay.FEB_28,
) -> Occurrence:
    """The first occurrence whose local date is today or later, as seen in `zone` at `now`."""
    occasion = next_occasion_date(original, now.astimezone(zone).date(), leap_day)
    return Occurrence(occasion, send_instant(occasion, zone, send_time))


def idempotency_key(user_id: object, message_type: str, occasion_date: date) -> str:
    """`{user_id}:{message_type}:{occasion_date}`, the key the provider deduplicates on."""
    return f"{user_id}:{message_type}:{occasion_date.isoformat()}"
