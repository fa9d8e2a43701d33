"""Keeping PostgreSQL's reading of time zones right: tzdata refresh and agreement checks."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from psycopg_pool import ConnectionPool

from db.transactions import transaction
from domain.occasions import send_instant
from repositories import occurrences, planned_changes, time_zones

log = logging.getLogger(__name__)

RETIME_BATCH_SIZE = 50_000
# A day a week for two years: every season, and most weeks a rule change could move.
SAMPLE_EVERY_DAYS = 7
SAMPLE_SPAN_DAYS = 2 * 366


@dataclass(frozen=True)
class ZoneRefresh:
    zones_changed: int
    greetings_moved: int


def refresh_zones(
    conn: psycopg.Connection, send_time: time, batch_size: int = RETIME_BATCH_SIZE
) -> ZoneRefresh:
    """Refresh time_zones, then re-time SCHEDULED greetings whose local send time moved.

    Owns its transactions: one for the zones, then one per batch of user ids. Give
    it a new connection: a PostgreSQL backend keeps the zone files it has read, so
    only a new session sees the rules of an upgraded tz database. Safe to run any
    time: rows already right are not written.
    """
    with conn.transaction():
        zones_changed = time_zones.refresh(conn)
    moved = 0
    after: UUID | None = None
    while True:
        with conn.transaction():
            upto = occurrences.user_id_batch_end(conn, after, batch_size)
            if upto is None:
                break
            moved += planned_changes.retime_scheduled(conn, send_time, id_after=after, id_upto=upto)
        after = upto
    log.info("time zones refreshed: %d zone(s) changed, %d greeting(s) moved", zones_changed, moved)
    return ZoneRefresh(zones_changed, moved)


def sample_days(today: date) -> list[date]:
    """The days the agreement check compares: one a week from `today`, for two years."""
    return [today + timedelta(days=n) for n in range(0, SAMPLE_SPAN_DAYS, SAMPLE_EVERY_DAYS)]


def disagreeing_zones(conn: psycopg.Connection, now: datetime, send_time: time) -> list[str]:
    """Zones users have where PostgreSQL's send instants differ from zoneinfo's (sorted)."""
    rows = time_zones.sample_send_instants(conn, sample_days(now.date()), send_time)
    differing: set[str] = set()
    loaded: dict[str, ZoneInfo | None] = {}
    for row in rows:
        name = row["zone"]
        if name not in loaded:
            loaded[name] = _load_zone(name)
        zone = loaded[name]
        if zone is None or send_instant(row["day"], zone, send_time) != row["instant"]:
            differing.add(name)
    return sorted(differing)


def warn_about_disagreeing_zones(
    conn: psycopg.Connection, now: datetime, send_time: time
) -> list[str]:
    """Log a warning naming the zones where this host and the database disagree; those zones."""
    differing = disagreeing_zones(conn, now, send_time)
    if differing:
        log.warning(
            "PostgreSQL and Python's zoneinfo compute different send times for %d zone(s)"
            " users have: %s; the tz databases of the app host and the database host differ"
            " (upgrade the older one, then run `flask db refresh-zones`)",
            len(differing),
            ", ".join(differing),
        )
    return differing


def check_agreement(pool: ConnectionPool, now: datetime, send_time: time) -> list[str]:
    """At a process's start: warn about zones users have that the database computes
    unlike zoneinfo. Never raises (the process serves anyway and its health checks
    report the database); the zones that differ, empty when the check could not run."""
    try:
        with transaction(pool) as conn:
            return warn_about_disagreeing_zones(conn, now, send_time)
    except Exception:
        log.exception("could not compare time zones with the database")
        return []


def _load_zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
