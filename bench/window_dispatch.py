"""Benchmark of dispatch with the delivery window on, against the same dispatch with it off.

    python -m bench.window_dispatch [--users 1000000]

On a scratch database of its own: N users (binary COPY of seed/'s generated users, in
bulk-load mode: secondary indexes and foreign keys rebuilt once after the load), half
in a zone where it is 10:00 at the benchmark's instant NOW (inside 08:00-21:00) and half
in one where it is 04:00 (outside), each with one birthday greeting due at NOW:
SCHEDULED, next and scheduled send time SEND_TIME local (today for the first zone,
yesterday for the second, still within MAX_LATENESS), written by one INSERT … SELECT
in the shape planning writes. Then, twice each, alternating and the rows put back
between runs:
- off: `dispatch_due` with DELIVERY_WINDOW=off, which claims all N;
- on: `dispatch_due` with DELIVERY_WINDOW=08:00-21:00, which moves the N/2 outside
  their window to its next opening (08:00 local) and claims the other N/2.
The `enqueue` given to dispatch only counts. Each mode's best run is kept.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from itertools import islice
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from bench.common import run_alone
from bench.report import Figure
from config import Settings
from db.pool import create_pool
from db.queries import copy_rows
from delivery.dispatch import dispatch_due
from domain.occasions import OCCASIONS, send_instant
from repositories import occasion_sql, partitions
from seed.data import USER_COLUMNS, SeedGenerator
from seed.loader import drop_deferrable

# 10:00 in Etc/GMT-9 (UTC+9), 04:00 in Etc/GMT-3 (UTC+3).
NOW = datetime(2026, 6, 15, 1, 0, tzinfo=UTC)
INSIDE_ZONE = "Etc/GMT-9"
OUTSIDE_ZONE = "Etc/GMT-3"
WINDOW = "08:00-21:00"
SEND_TIME = clock_time(9, 0)
RUNS = 2  # of each mode, alternating
COPY_BATCH = 10_000
BIRTHDAY = OCCASIONS.by_type("BIRTHDAY")

# One due birthday greeting per user, as planning writes it (repositories/occurrences.py):
# scheduled and next due at SEND_TIME local on the occasion date of the user's zone.
_PLAN_DUE = """
INSERT INTO message_logs (user_id, message_type, occasion_date, message_content,
                          scheduled_send_time, next_attempt_at, idempotency_key)
SELECT user_id, {message_type}, occasion_date, {text}, send_at, send_at,
       message_idempotency_key(user_id, {message_type}, occasion_date)
FROM (
    SELECT u.id AS user_id, u.first_name, u.last_name, d.occasion_date,
           local_send_instant(d.occasion_date, %(send_time)s::time, z.compute_as) AS send_at
    FROM users u
    JOIN time_zones z ON z.name = u.timezone
    JOIN (VALUES (%(inside)s::text, %(inside_date)s::date),
                 (%(outside)s::text, %(outside_date)s::date)) AS d (zone, occasion_date)
      ON d.zone = u.timezone
) AS due
ORDER BY occasion_date, user_id
"""

# Every greeting back as it was planned: waiting, due at its send time, no lease.
_RESET = """
UPDATE message_logs
SET status = 'SCHEDULED', next_attempt_at = scheduled_send_time,
    locked_until = NULL, queued_at = NULL
WHERE status <> 'SCHEDULED' OR next_attempt_at IS DISTINCT FROM scheduled_send_time
   OR locked_until IS NOT NULL OR queued_at IS NOT NULL
"""

_OUTCOME = """
SELECT u.timezone, m.status, m.next_attempt_at, count(*) AS rows
FROM message_logs m JOIN users u ON u.id = m.user_id
GROUP BY 1, 2, 3
"""


@dataclasses.dataclass(frozen=True)
class Zone:
    name: str
    occasion_date: date  # the latest local date whose SEND_TIME is not after NOW
    opening: datetime | None  # the window's next opening; None: inside it at NOW


def _zone(name: str, opens: clock_time, closes: clock_time) -> Zone:
    """What NOW is in zone `name`, read with zoneinfo."""
    info = ZoneInfo(name)
    local = NOW.astimezone(info)
    occasion = local.date()
    if send_instant(occasion, info, SEND_TIME) > NOW:
        occasion -= timedelta(days=1)
    if opens <= local.time() < closes:
        return Zone(name, occasion, None)
    opening_day = local.date() if local.time() < opens else local.date() + timedelta(days=1)
    return Zone(name, occasion, send_instant(opening_day, info, opens))


def _zones() -> tuple[Zone, Zone]:
    opens, closes = Settings.from_env({}, delivery_window=WINDOW).delivery_hours
    inside, outside = _zone(INSIDE_ZONE, opens, closes), _zone(OUTSIDE_ZONE, opens, closes)
    if inside.opening is not None or outside.opening is None:
        raise SystemExit(f"at {NOW} {INSIDE_ZONE} must be inside {WINDOW}, {OUTSIDE_ZONE} outside")
    return inside, outside


def _user_rows(users: int, inside: Zone, outside: Zone):
    """seed/'s generated users, alternately in each zone, born on its occasion's day."""
    generator = SeedGenerator(1, NOW, SEND_TIME)
    birthday_at = OCCASIONS.date_fields.index(BIRTHDAY.date_field)
    for number, user in enumerate(generator.users(users)):
        zone = inside if number % 2 == 0 else outside
        dates = list(user.dates)
        dates[birthday_at] = zone.occasion_date.replace(year=1990)
        yield dataclasses.replace(user, timezone=zone.name, dates=tuple(dates)).row()


def seed(url: str, users: int, inside: Zone, outside: Zone) -> int:
    """Load the users and their due greetings in one transaction; the greetings written."""
    names, types = zip(*USER_COLUMNS, strict=True)
    planned = sql.SQL(_PLAN_DUE).format(
        message_type=sql.Literal(BIRTHDAY.message_type),
        text=occasion_sql.greeting_text(
            OCCASIONS, f"'{BIRTHDAY.message_type}'", "first_name", "last_name"
        ),
    )
    with psycopg.connect(url, row_factory=dict_row) as conn:
        partitions.create_monthly(conn, 1, outside.occasion_date.replace(day=1))
        restores = drop_deferrable(conn)
        rows = _user_rows(users, inside, outside)
        while copy_rows(conn, "users", names, islice(rows, COPY_BATCH), types) == COPY_BATCH:
            pass
        greetings = conn.execute(
            planned,
            {
                "send_time": SEND_TIME,
                "inside": inside.name,
                "inside_date": inside.occasion_date,
                "outside": outside.name,
                "outside_date": outside.occasion_date,
            },
        ).rowcount
        for restore in restores:
            restore()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE users, message_logs")
    return greetings


def reset(url: str) -> None:
    """Put every greeting back as seeded; vacuumed, analysed and checkpointed, so each
    run starts from the same state and no run pays for an earlier one's dead rows."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(_RESET)
        conn.execute("VACUUM ANALYZE message_logs")
        conn.execute("CHECKPOINT")


@dataclasses.dataclass(frozen=True)
class Run:
    seconds: float
    queued: int


def dispatch_once(url: str, window: str) -> Run:
    """One timed `dispatch_due` at NOW with DELIVERY_WINDOW=`window`."""
    settings = Settings.from_env({}, database_url=url, delivery_window=window)
    pool = create_pool(settings, "bench")
    pool.open(wait=True)
    calls: list[int] = []

    def collect(message_id: int, occasion_date: date) -> None:
        calls.append(message_id)

    try:
        started = time.perf_counter()
        result = dispatch_due(pool, collect, NOW, settings)
        seconds = time.perf_counter() - started
    finally:
        pool.close()
    if result.queued != len(calls) or result.expired:
        raise SystemExit(f"dispatch said {result}, enqueue was called {len(calls)} times")
    return Run(seconds=seconds, queued=result.queued)


def _outcome(url: str) -> dict[tuple[str, str, datetime], int]:
    with psycopg.connect(url, options="-c TimeZone=UTC") as conn:
        return {(z, s, at): n for z, s, at, n in conn.execute(_OUTCOME)}


def check(url: str, window: str, users: int, inside: Zone, outside: Zone) -> None:
    """Raise unless the run queued exactly whom it should and deferred the rest to their
    zone's opening."""
    seeded = _plan_counts(users)
    got = _outcome(url)
    lease = Settings.from_env({}).queued_lease
    if window == "off":
        expected = {
            (zone.name, "QUEUED", zone_due(zone)): seeded[zone.name] for zone in (inside, outside)
        }
    else:
        expected = {
            (inside.name, "QUEUED", zone_due(inside)): seeded[inside.name],
            (outside.name, "SCHEDULED", outside.opening): seeded[outside.name],
        }
    if got != expected:
        raise SystemExit(f"window {window}: rows (zone, status, next attempt) {got} != {expected}")
    with psycopg.connect(url) as conn:
        leases = conn.execute(
            "SELECT count(*) FROM message_logs WHERE status = 'QUEUED'"
            " AND (locked_until <> %s OR queued_at <> %s)",
            (NOW + lease, NOW),
        ).fetchone()[0]
    if leases:
        raise SystemExit(f"window {window}: {leases} QUEUED rows without NOW's lease")


def zone_due(zone: Zone) -> datetime:
    """When a zone's greeting was due (its next attempt, unchanged by a claim)."""
    return send_instant(zone.occasion_date, ZoneInfo(zone.name), SEND_TIME)


def _plan_counts(users: int) -> dict[str, int]:
    return {INSIDE_ZONE: (users + 1) // 2, OUTSIDE_ZONE: users // 2}


def measure(url: str, users: int) -> list[Figure]:
    """Seed `users` into the migrated database at `url`, then time dispatch off and on."""
    if users < 2:
        raise SystemExit("--users must be at least 2: half inside their window, half outside")
    inside, outside = _zones()
    started = time.perf_counter()
    greetings = seed(url, users, inside, outside)
    print(
        f"seeded {users:,} users and {greetings:,} due greetings in "
        f"{time.perf_counter() - started:.1f} s"
    )
    if greetings != users:
        raise SystemExit(f"{greetings} greetings for {users} users")
    expected = {"off": users, WINDOW: _plan_counts(users)[INSIDE_ZONE]}
    runs: dict[str, list[Run]] = {"off": [], WINDOW: []}
    for _ in range(RUNS):
        for window in ("off", WINDOW):
            reset(url)
            run = dispatch_once(url, window)
            if run.queued != expected[window]:
                raise SystemExit(f"window {window}: queued {run.queued}, not {expected[window]}")
            check(url, window, users, inside, outside)
            runs[window].append(run)
            print(f"  window {window}: {run.seconds:.2f} s, {run.queued:,} queued", flush=True)
    reset(url)
    off = min(runs["off"], key=lambda run: run.seconds)
    on = min(runs[WINDOW], key=lambda run: run.seconds)
    deferred = users - on.queued
    command = f"python -m bench.window_dispatch --users {users}"
    setup = (
        f"{users:,} users ({on.queued:,} in {INSIDE_ZONE}, 10:00 local; {deferred:,} in"
        f" {OUTSIDE_ZONE}, 04:00), one greeting each due at {NOW:%Y-%m-%d %H:%M} UTC;"
        f" dispatch_due (DISPATCH_BATCH_SIZE {Settings().dispatch_batch_size}) with an"
        " enqueue that only counts; best of 2 each, run alternately, rows reset, vacuumed"
        " and checkpointed between runs"
    )
    return [
        Figure(
            measure=f"dispatch, {users:,} due greetings, half outside their window:"
            " window on vs off",
            command=command,
            project=on.seconds,
            baseline=off.seconds,
            unit="s",
            better="lower",
            target=1.2,
            note=f"{setup}; on ({WINDOW}): {deferred:,} moved to 08:00 local and"
            f" {on.queued:,} queued; off: all {off.queued:,} queued",
        ),
    ]


def main() -> None:
    run_alone(measure, __doc__)


if __name__ == "__main__":
    main()
