"""On time: how long after its scheduled instant a greeting reaches the provider.

    python -m bench.on_time [--greetings 1000] [--workers 2] [--threads 8]

With the whole service running (scheduler at its default DISPATCH_INTERVAL_SECONDS,
workers, the local provider, a rate limit that does not bind):
- at one instant: `--greetings` users whose birthday is today, SEND_TIME the next
  whole minute at least 40 s ahead (UTC), so every greeting falls due at once;
- spread over a minute: as many greetings whose due instants are spread evenly over
  the minute that starts 30 s ahead (written into rows planned for a later day, as
  an operator's reschedule would).
Lateness is the provider's receipt time minus the greeting's scheduled instant (both
read off this machine's clock). The baseline for the burst is the same number of
bare POSTs published at once to a raw Dramatiq drain that is already running: the
lateness the queue and the provider alone add, which no scheduler can beat.
Everything runs on scratch resources of its own, removed at the end.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg
import redis
import requests

from bench.common import ROOT, free_port, scratch_database, start, stop
from bench.e2e_sends import REDIS_URL, _environment, _start_provider, _wait, scratch_vhost
from bench.report import Figure
from config import Settings
from repositories import occurrences

COMMAND = "python -m bench.on_time"


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"p50": statistics.median(ordered), "p99": p99, "max": ordered[-1]}


def _received(provider: str) -> dict[str, datetime]:
    """The first receipt of each Idempotency-Key at the provider."""
    seen: dict[str, datetime] = {}
    for request in requests.get(f"{provider}/requests", timeout=10).json():
        at = datetime.fromisoformat(request["received_at"])
        seen.setdefault(request["idempotency_key"], at)
    return seen


def _lateness(url: str, provider: str) -> list[float]:
    with psycopg.connect(url) as conn:
        planned = dict(
            conn.execute(
                "SELECT idempotency_key, scheduled_send_time FROM message_logs"
                " WHERE status = 'SENT'"
            ).fetchall()
        )
    received = _received(provider)
    return [(received[key] - at).total_seconds() for key, at in planned.items() if key in received]


def _sending_at(instant: datetime) -> dict[str, str]:
    """The settings that make `instant` (whatever whole minute comes next, UTC) the
    day's SEND_TIME. The delivery window is off: with the default one, past 21:00 the
    service would refuse that SEND_TIME and send nothing."""
    return {"SEND_TIME": instant.strftime("%H:%M"), "DELIVERY_WINDOW": "off"}


def _next_whole_minute(now: datetime) -> datetime:
    instant = (now + timedelta(seconds=40)).replace(second=0, microsecond=0)
    return instant + timedelta(minutes=1)


def _add_users(url: str, count: int, birthday: datetime, name: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (first_name, last_name, email, timezone, birthday_date)"
            " SELECT %s, 'User' || n, %s || n || '@example.com', 'UTC', %s"
            " FROM generate_series(1, %s) AS n",
            (name, name.lower(), birthday.date().replace(year=1990), count),
        )


def _sent(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM message_logs WHERE status = 'SENT'").fetchone()[0]


def _spread_over_a_minute(url: str, count: int, first: datetime) -> None:
    """Plan `count` greetings for tomorrow, then move their instants into one minute."""
    with psycopg.connect(url) as conn:
        occurrences.plan_next_occurrences(conn, datetime.now(UTC), Settings.from_env({}).send_time)
        conn.execute(
            "WITH spread AS ("
            "  SELECT id, occasion_date, row_number() OVER (ORDER BY id) - 1 AS n"
            "  FROM message_logs WHERE status = 'SCHEDULED' AND message_content LIKE %s)"
            " UPDATE message_logs m SET scheduled_send_time = %s + s.n * %s,"
            "   next_attempt_at = %s + s.n * %s"
            " FROM spread s WHERE m.id = s.id AND m.occasion_date = s.occasion_date",
            ("%Spread%", first, timedelta(minutes=1) / count, first, timedelta(minutes=1) / count),
        )


def _engine(env: dict, url: str, provider: str, count: int, workers: int, threads: int) -> dict:
    """Lateness of a burst at one instant and of greetings spread over a minute."""
    burst_at = _next_whole_minute(datetime.now(UTC))
    _add_users(url, count, burst_at, "Burst")
    env = {
        **env,
        **_sending_at(burst_at),
        "DISPATCH_INTERVAL_SECONDS": "30",
    }
    dramatiq = [sys.executable, "-m", "dramatiq", "tasks", "--processes", "1"]
    processes = [start([*dramatiq, "--threads", str(threads)], env) for _ in range(workers)]
    processes.append(start([sys.executable, "-m", "tasks.scheduler"], env))
    try:
        wait = (burst_at - datetime.now(UTC)).total_seconds() + 120
        _wait(lambda: _sent(url) >= count, wait)
        burst = _lateness(url, provider)
        requests.post(f"{provider}/reset", timeout=5)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM message_logs")
            conn.execute("DELETE FROM users")
        tomorrow = datetime.now(UTC) + timedelta(days=2)  # planned, then moved
        _add_users(url, count, tomorrow, "Spread")
        first = datetime.now(UTC) + timedelta(seconds=20)
        _spread_over_a_minute(url, count, first)
        _wait(lambda: _sent(url) >= count, 30 + 60 + 120)
        return {"burst": burst, "spread": _lateness(url, provider)}
    finally:
        stop(processes)


def _raw_burst(env: dict, provider: str, count: int, workers: int, threads: int) -> list[float]:
    """Lateness of `count` bare POSTs published at once to drainers already running."""
    command = [sys.executable, "-m", "dramatiq", "bench.raw_drain_actor", "--processes", "1"]
    drainers = [start([*command, "--threads", str(threads)], env) for _ in range(workers)]
    try:
        time.sleep(5)  # connected and consuming
        publish = "import sys, time; from bench.raw_drain_actor import raw_post; " + (
            "print(time.time(), flush=True); [raw_post.send(n) for n in range(int(sys.argv[1]))]"
        )
        # The benchmark's own fixed command, never outside input.
        done = subprocess.run(  # noqa: S603
            [sys.executable, "-c", publish, str(count)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        published_at = datetime.fromtimestamp(float(done.stdout.split()[0]), UTC)
        _wait(lambda: len(_received(provider)) >= count, 300)
        return [(at - published_at).total_seconds() for at in _received(provider).values()]
    finally:
        stop(drainers)


def measure(count: int, workers: int, threads: int) -> list[Figure]:
    """p50, p99 and max lateness, at one instant (against the raw drain) and spread."""
    with scratch_database() as url, scratch_vhost() as vhost:
        redis.Redis.from_url(REDIS_URL).flushdb()
        port = free_port()
        env = _environment(url, vhost, port)
        provider_process, provider = _start_provider(env, port)
        try:
            raw = _percentiles(_raw_burst(env, provider, count, workers, threads))
            requests.post(f"{provider}/reset", timeout=5)
            engine = _engine(env, url, provider, count, workers, threads)
        finally:
            stop([provider_process])
    burst, spread = _percentiles(engine["burst"]), _percentiles(engine["spread"])
    command = f"{COMMAND} --greetings {count} --workers {workers} --threads {threads}"
    figures = [
        Figure(
            measure=f"on time: {count} greetings due at one instant, {name} lateness",
            command=command,
            project=burst[name],
            baseline=raw[name],
            unit="s",
            better="lower",
            note=(
                "baseline: as many bare POSTs published at once to a running raw Dramatiq"
                " drain (the queue's and the provider's own delay); absolute target p99 ≤ 0.5 s"
            ),
        )
        for name in ("p50", "p99", "max")
    ]
    figures += [
        Figure(
            measure=f"on time: {count} greetings spread over a minute, {name} lateness",
            command=command,
            project=spread[name],
            baseline=0.5,
            unit="s",
            better="lower",
            target=1.0 if name == "p99" else None,
            note="baseline: the absolute target, p99 ≤ 0.5 s after the scheduled instant",
        )
        for name in ("p50", "p99", "max")
    ]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--greetings", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    for figure in measure(args.greetings, args.workers, args.threads):
        print(figure.line())


if __name__ == "__main__":
    main()
