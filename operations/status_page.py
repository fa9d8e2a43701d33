"""What the operator's status page shows: figures from PostgreSQL, RabbitMQ and Redis.

The overview is read in one short read-only transaction, each figure through an
index range (repositories/operator_views.py), and kept for SUMMARY_CACHE_SECONDS per
process, so a page left open and refreshed costs PostgreSQL almost nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg_pool import ConnectionPool

from adapters import broker_probe
from config import Settings
from operations import health
from repositories import heartbeats, operator_views, partitions, service_state

SUMMARY_CACHE_SECONDS = 10.0
DAYS_AHEAD = 7
CHART_HOURS = 48
UPCOMING_HOURS = 24


@dataclass(frozen=True)
class Page:
    rows: list[dict]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        """How many pages the rows fill (at least one)."""
        return max(1, -(-self.total // self.page_size))


class SummaryCache:
    """The last overview per process, refreshed when older than `seconds`."""

    def __init__(self, seconds: float = SUMMARY_CACHE_SECONDS) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._value: tuple[float, dict[str, Any]] | None = None

    def get(self, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The cached overview, or a new one from `build()` when the cache is stale."""
        with self._lock:
            if self._value is None or time.monotonic() - self._value[0] > self.seconds:
                self._value = (time.monotonic(), build())
            return self._value[1]


def hour_floor(moment: datetime) -> datetime:
    """The start of the UTC hour holding `moment`."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _hourly(rows: list[dict], first: datetime, hours: int) -> list[dict]:
    """One {hour, count} per hour from `first`, zero where the query had no row."""
    counts = {row["hour"].astimezone(UTC): row["count"] for row in rows}
    slots = (first + timedelta(hours=n) for n in range(hours))
    return [{"hour": slot, "count": counts.get(slot, 0)} for slot in slots]


def _by_day(rows: list[dict], today: date) -> list[dict]:
    """One {day, counts: {status: n}, total} per day from `today`, DAYS_AHEAD days on."""
    days = [today + timedelta(days=n) for n in range(DAYS_AHEAD + 1)]
    table = {day: dict.fromkeys(operator_views.ALL_STATUSES, 0) for day in days}
    for row in rows:
        if row["day"] in table:
            table[row["day"]][row["status"]] = row["count"]
    return [{"day": day, "counts": table[day], "total": sum(table[day].values())} for day in days]


def read_summary(pool: ConnectionPool, settings: Settings, now: datetime) -> dict[str, Any]:
    """Every figure of the overview at `now`."""
    today = now.astimezone(UTC).date()
    day_start = datetime(today.year, today.month, today.day, tzinfo=UTC)
    hour_ago = now - timedelta(hours=1)
    chart_since = hour_floor(now) - timedelta(hours=CHART_HOURS - 1)
    chart_window = operator_views.lateness_window(chart_since, settings.max_lateness)
    with pool.connection() as conn, conn.transaction():
        conn.execute("SET TRANSACTION READ ONLY")
        by_day = operator_views.count_by_day_and_status(
            conn, day_start, day_start + timedelta(days=DAYS_AHEAD + 1)
        )
        outcomes = operator_views.count_outcomes_since(
            conn, hour_ago, now, operator_views.lateness_window(hour_ago, settings.max_lateness)
        )
        sent_hourly = operator_views.count_sent_by_hour(conn, chart_since, now, chart_window)
        due_hourly = operator_views.count_due_by_hour(
            conn, now, hour_floor(now) + timedelta(hours=CHART_HOURS)
        )
        due = service_state.read_due(conn, now)
        jobs = heartbeats.list_all(conn)
        partition_rows = partitions.list_all(conn)
        default_has_rows = partitions.default_has_rows(conn)
        recipients = service_state.read_recipients(conn)
    return {
        "now": now,
        "by_day": _by_day(by_day, today),
        "last_hour": outcomes,
        "sent_hourly": _hourly(sent_hourly, chart_since, CHART_HOURS),
        "due_hourly": _hourly(due_hourly, hour_floor(now), CHART_HOURS),
        "due": due,
        "scheduler": _scheduler(jobs, settings),
        "breaker": health.check_breaker(settings),
        "queues": broker_probe.queue_depths(settings),
        "partitions": _partitions(partition_rows, default_has_rows, today),
        "recipients": recipients,
    }


def _scheduler(jobs: list[dict], settings: Settings) -> dict[str, Any]:
    dispatch = next((job for job in jobs if job["job"] == "dispatch"), None)
    healthy = health.dispatched_lately(dispatch, settings)
    return {"leader": dispatch["leader"] if dispatch else None, "healthy": healthy, "jobs": jobs}


def _partitions(rows: list[dict], default_has_rows: bool, today: date) -> dict[str, Any]:
    month = today.replace(day=1)
    future = [row for row in rows if row["range_start"] and row["range_start"] > month]
    return {
        "rows": rows,
        "future": len(future),
        "last_month": max((row["range_start"] for row in rows if row["range_start"]), default=None),
        "default_has_rows": default_has_rows,
    }


def upcoming(
    conn: psycopg.Connection,
    now: datetime,
    message_type: str | None,
    page: int,
    page_size: int,
) -> Page:
    """SCHEDULED greetings of the next UPCOMING_HOURS, with their send time in the user's zone."""
    rows, total = operator_views.list_upcoming(
        conn,
        now,
        until=now + timedelta(hours=UPCOMING_HOURS),
        message_type=message_type,
        limit=page_size,
        offset=(page - 1) * page_size,
    )
    for row in rows:
        # zoneinfo, not PostgreSQL's AT TIME ZONE: the calendar rules live in Python.
        row["local_send_time"] = row["scheduled_send_time"].astimezone(ZoneInfo(row["timezone"]))
    return Page(rows, total, page, page_size)


def failures(
    conn: psycopg.Connection,
    now: datetime,
    status: str | None,
    days: int,
    page: int,
    page_size: int,
) -> Page:
    """FAILED and/or EXPIRED greetings scheduled in the last `days` days, latest first."""
    statuses = [status] if status else operator_views.UNSENT_FINAL
    rows, total = operator_views.list_failures(
        conn, statuses, now - timedelta(days=days), page_size, (page - 1) * page_size
    )
    return Page(rows, total, page, page_size)


def stuck(conn: psycopg.Connection, now: datetime, page: int, page_size: int) -> Page:
    """QUEUED/SENDING greetings whose lease has run out, longest overdue first."""
    rows, total = operator_views.list_stuck(conn, now, page_size, (page - 1) * page_size)
    return Page(rows, total, page, page_size)
