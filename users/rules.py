"""Rules on a user's fields that involve more than one field or the clock."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from domain.occasions import OCCASIONS

EARLIEST_DATE = date(1900, 1, 1)
OCCASION_FIELDS = OCCASIONS.date_fields
# The same names as the database's time_zones table (see migration 0009): every zone
# zoneinfo lists except the host's own zone (localtime), the template for POSIX TZ
# strings (posixrules) and the "zone not set" placeholder (Factory).
NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})
_KNOWN_ZONES = frozenset(
    name
    for name in available_timezones()
    if name not in NOT_ZONES and not name.startswith(("posix/", "right/"))
)


def is_known_timezone(name: str) -> bool:
    """An IANA zone name that zoneinfo can load (e.g. Asia/Kathmandu, UTC)."""
    if name not in _KNOWN_ZONES:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def occasion_date_errors(user: Mapping[str, Any], now: datetime) -> dict[str, list[str]]:
    """Problems with the occasion dates of a complete user, by field (empty when fine).

    A date may not lie after the user's own local today, so someone in a +14:00
    zone can register a child born on what is still yesterday in UTC.
    """
    errors: dict[str, list[str]] = {}
    if all(user.get(field) is None for field in OCCASION_FIELDS):
        errors[OCCASION_FIELDS[0]] = [OCCASIONS.required_message]
        return errors
    zone_name = user.get("timezone")
    local_today = (
        now.astimezone(ZoneInfo(zone_name)).date()
        if zone_name and is_known_timezone(zone_name)
        else None
    )
    for field in OCCASION_FIELDS:
        value = user.get(field)
        if value is None:
            continue
        if value < EARLIEST_DATE:
            errors[field] = ["must not be before 1900-01-01"]
        elif local_today is not None and value > local_today:
            errors[field] = ["must not be in the future"]
    return errors
