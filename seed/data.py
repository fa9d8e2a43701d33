"""Deterministic, realistic users and their message history for `flask db seed`.

The same random seed and `now` always give the same rows. Zones cover the awkward
offsets (+05:45, +12:45, +13, +14, -10, -11, -12) and half-hour DST; about one user
in 400 is born on Feb 29.
"""

from __future__ import annotations

import functools
import random
import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from domain.occasions import (
    OCCASIONS,
    Occasion,
    Occurrence,
    idempotency_key,
    next_occasion_date,
    previous_occasion_date,
    send_instant,
)
from domain.statuses import Status
from seed.names import FIRST_NAMES, LAST_NAMES, TLDS, ZONES

# Share of past occasions recorded as delivered / failed.
SENT_SHARE = 0.30
FAILED_SHARE = 0.01
FAILED_RETRIES = 5
# The registry's first occasion (the birthday) is held by nine users in ten, born from
# 1940 on, one in 400 on Feb 29; each other occasion by about a third, from 1970 on.
_FIRST_FROM = date(1940, 1, 1).toordinal()
_OTHERS_FROM = date(1970, 1, 1).toordinal()
_OTHER_SHARE = 0.35
_ONLY_OTHERS_SHARE = 0.1

# Column names and their types, for binary COPY.
USER_COLUMNS = (
    ("id", "uuid"),
    ("first_name", "text"),
    ("last_name", "text"),
    ("email", "text"),
    ("timezone", "text"),
    *((field, "date") for field in OCCASIONS.date_fields),
    ("location_city", "text"),
    ("location_country", "text"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
)
MESSAGE_COLUMNS = (
    ("user_id", "uuid"),
    ("message_type", "text"),
    ("occasion_date", "date"),
    ("message_content", "text"),
    ("scheduled_send_time", "timestamptz"),
    ("actual_send_time", "timestamptz"),
    ("status", "text"),
    ("retry_count", "int4"),
    ("last_retry_at", "timestamptz"),
    ("next_attempt_at", "timestamptz"),
    ("api_response_code", "int4"),
    ("api_response_body", "text"),
    ("error_message", "text"),
    ("idempotency_key", "text"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
)


@dataclass(frozen=True)
class SeedUser:
    id: uuid.UUID
    first_name: str
    last_name: str
    email: str
    timezone: str
    dates: tuple[date | None, ...]  # one per occasion of the registry, in its order
    location_city: str | None
    location_country: str | None
    created_at: datetime

    def row(self) -> tuple:
        return (
            self.id,
            self.first_name,
            self.last_name,
            self.email,
            self.timezone,
            *self.dates,
            self.location_city,
            self.location_country,
            self.created_at,
            self.created_at,
        )


class SeedGenerator:
    """Yields users and their message rows from one seeded random stream."""

    def __init__(self, random_seed: int, now: datetime, send_time: time) -> None:
        # Two streams, so the rows do not depend on how the caller batches them.
        # Seeded on purpose (the same users every run); nothing here is a secret.
        self.rng = random.Random(random_seed)  # noqa: S311  reproducible test data
        self.history_rng = random.Random(f"{random_seed}:history")  # noqa: S311  same
        self.now = now
        self.send_time = send_time
        self._zones = [zone[:3] for zone in ZONES]
        self._weights = [zone[3] for zone in ZONES]
        self._zone_info = {name: ZoneInfo(name) for name, *_ in ZONES}
        # Few distinct (date, zone) pairs recur across many users.
        self._send_instant = functools.lru_cache(maxsize=65_536)(send_instant)
        self._local_today = {
            name: now.astimezone(zone).date() for name, zone in self._zone_info.items()
        }

    def users(self, count: int, start: int = 0) -> Iterator[SeedUser]:
        """Users number start .. start+count-1 (the number keeps emails unique)."""
        for number in range(start, start + count):
            yield self._user(number)

    def _user(self, number: int) -> SeedUser:
        rng = self.rng
        first = rng.choice(FIRST_NAMES)
        last = rng.choice(LAST_NAMES)
        zone, city, country = rng.choices(self._zones, self._weights)[0]
        dates = self._dates()
        email = f"{_ascii(first)}.{_ascii(last)}.{number}@example.{TLDS[number % 3]}"
        created = self.now - timedelta(seconds=60 + rng.random() * 1000 * 86400)
        return SeedUser(
            id=uuid.UUID(int=rng.getrandbits(128), version=4),
            first_name=first,
            last_name=last,
            email=email,
            timezone=zone,
            dates=dates,
            location_city=city,
            location_country=country,
            created_at=created,
        )

    def _dates(self) -> tuple[date | None, ...]:
        """One date (or None) per occasion: at least one of them is set."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.0025:
            first: date | None = date(rng.choice(range(1944, 2008, 4)), 2, 29)
        else:
            first = date.fromordinal(_FIRST_FROM + int(rng.random() * 24_800))
        others: list[date | None] = []
        for _ in OCCASIONS.all[1:]:
            other = None
            if rng.random() < _OTHER_SHARE:
                other = date.fromordinal(_OTHERS_FROM + int(rng.random() * 20_000))
            others.append(other)
        if any(others) and rng.random() < _ONLY_OTHERS_SHARE:
            first = None  # only the other occasions
        return (first, *others)

    def messages(self, user: SeedUser) -> list[tuple]:
        """Message rows for the user's occasions: the next one SCHEDULED, some history."""
        rows = []
        zone = self._zone_info[user.timezone]
        local_today = self._local_today[user.timezone]
        for occasion, original in zip(OCCASIONS, user.dates, strict=True):
            if original is None:
                continue
            rule = occasion.leap_day
            upcoming = self._occurrence(next_occasion_date(original, local_today, rule), zone)
            if upcoming.scheduled_send_time <= self.now:
                # Today's greeting already went out at SEND_TIME; next year's waits.
                rows.append(self._delivered(user, occasion, upcoming))
                following = occasion.in_year(original, upcoming.occasion_date.year + 1)
                upcoming = self._occurrence(following, zone)
            else:
                past = previous_occasion_date(original, local_today, rule)
                roll = self.history_rng.random()
                if past is not None and roll < FAILED_SHARE:
                    rows.append(self._failed(user, occasion, self._occurrence(past, zone)))
                elif past is not None and roll < FAILED_SHARE + SENT_SHARE:
                    rows.append(self._delivered(user, occasion, self._occurrence(past, zone)))
            rows.append(self._scheduled(user, occasion, upcoming))
        return rows

    def _occurrence(self, occasion: date, zone: ZoneInfo) -> Occurrence:
        return Occurrence(occasion, self._send_instant(occasion, zone, self.send_time))

    def _base(self, user: SeedUser, occasion: Occasion, occurrence: Occurrence) -> list:
        # MESSAGE_COLUMNS' first five; each row below adds the rest, in column order.
        return [
            user.id,
            occasion.message_type,
            occurrence.occasion_date,
            occasion.greeting(user.first_name, user.last_name),
            occurrence.scheduled_send_time,
        ]

    def _scheduled(self, user: SeedUser, occasion: Occasion, occurrence: Occurrence) -> tuple:
        key = idempotency_key(user.id, occasion.message_type, occurrence.occasion_date)
        return (
            *self._base(user, occasion, occurrence),
            None,  # actual_send_time
            Status.SCHEDULED.value,  # status
            0,  # retry_count
            None,  # last_retry_at
            occurrence.scheduled_send_time,  # next_attempt_at
            None,  # api_response_code
            None,  # api_response_body
            None,  # error_message
            key,  # idempotency_key
            self.now,  # created_at
            self.now,  # updated_at
        )

    def _delivered(self, user: SeedUser, occasion: Occasion, occurrence: Occurrence) -> tuple:
        delay = timedelta(seconds=1 + self.history_rng.random() * 90)
        sent_at = occurrence.scheduled_send_time + delay
        key = idempotency_key(user.id, occasion.message_type, occurrence.occasion_date)
        return (
            *self._base(user, occasion, occurrence),
            sent_at,  # actual_send_time
            Status.SENT.value,  # status
            0,  # retry_count
            None,  # last_retry_at
            None,  # next_attempt_at
            200,  # api_response_code
            '{"status":"sent"}',  # api_response_body
            None,  # error_message
            key,  # idempotency_key
            occurrence.scheduled_send_time,  # created_at
            sent_at,  # updated_at
        )

    def _failed(self, user: SeedUser, occasion: Occasion, occurrence: Occurrence) -> tuple:
        last_try = occurrence.scheduled_send_time + timedelta(hours=2)
        key = idempotency_key(user.id, occasion.message_type, occurrence.occasion_date)
        return (
            *self._base(user, occasion, occurrence),
            None,  # actual_send_time
            Status.FAILED.value,  # status
            FAILED_RETRIES,  # retry_count
            last_try,  # last_retry_at
            None,  # next_attempt_at
            503,  # api_response_code
            '{"error":"service unavailable"}',  # api_response_body
            "provider unavailable after 5 retries",  # error_message
            key,  # idempotency_key
            occurrence.scheduled_send_time,  # created_at
            last_try,  # updated_at
        )


@functools.cache
def _ascii(name: str) -> str:
    """A lower-case ASCII form of a name for the local part of an email address."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum()) or "user"
