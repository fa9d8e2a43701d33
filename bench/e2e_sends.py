"""End-to-end sends per second: N due greetings through scheduler, RabbitMQ, workers and
the local provider, against a baseline of the same N POSTs sent straight to the provider.

    python -m bench.e2e_sends [--users 2000] [--workers 2] [--threads 8]

Everything runs on scratch resources of its own (database, RabbitMQ vhost, Redis db 14,
provider port) that are removed at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

import psycopg
import redis
import requests

from bench import cpu
from bench.common import ROOT, free_port, scratch_database, start, stop
from bench.report import Figure
from config import Settings
from db.pool import create_pool
from planning.all_users import plan_all

REDIS_URL = "redis://127.0.0.1:6379/14"


def _wait(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.1)


def _due_zone(now: datetime) -> str:
    """A zone where today's greeting is already due and the default delivery window
    (08:00-21:00) stays open for the whole run."""
    for name in ("UTC", "Asia/Tokyo", "America/New_York", "Asia/Kolkata", "Pacific/Honolulu"):
        if 10 <= now.astimezone(ZoneInfo(name)).hour < 20:
            return name
    raise SystemExit("no zone between 10:00 and 20:00")


def _baseline(provider_url: str, count: int, threads: int) -> float:
    session = requests.Session()

    def post(n: int) -> None:
        body = {"email": "b@example.com", "message": "hi"}
        headers = {"Idempotency-Key": f"baseline-{n}"}
        answer = session.post(f"{provider_url}/send-email", json=body, headers=headers, timeout=10)
        answer.raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as executor:
        list(executor.map(post, range(count)))
    return time.perf_counter() - started


def _raw_drain(
    env: dict, provider: str, count: int, workers: int, threads: int
) -> tuple[float, Counter[str]]:
    """Seconds for `workers` x `threads` Dramatiq workers to drain `count` bare POSTs, and
    the CPU each kind of process used meanwhile (the drainers' start included)."""
    # The benchmark's own fixed command, never outside input.
    publish = "import sys; from bench.raw_drain_actor import raw_post; " + (
        "[raw_post.send(n) for n in range(int(sys.argv[1]))]"
    )
    subprocess.run([sys.executable, "-c", publish, str(count)], cwd=ROOT, env=env, check=True)  # noqa: S603
    cpu_before = cpu.snapshot()
    started = time.perf_counter()
    drainers = [
        start(
            [
                sys.executable,
                "-m",
                "dramatiq",
                "bench.raw_drain_actor",
                "--processes",
                "1",
                "--threads",
                str(threads),
            ],
            env,
        )
        for _ in range(workers)
    ]
    try:
        _wait(lambda: _delivered(provider) >= count, 600)
        return time.perf_counter() - started, cpu.used_since(cpu_before)
    finally:
        stop(drainers)


def _delivered(provider: str) -> int:
    return len(requests.get(f"{provider}/deliveries", timeout=10).json())


def measure(users: int, workers: int, threads: int) -> list[Figure]:
    """The send path against a raw Dramatiq drain and straight POSTs, same provider."""
    with scratch_database() as url, scratch_vhost() as vhost:
        runs = _run(url, vhost, users, workers, threads)
    if runs.delivered != users:
        raise SystemExit(f"{runs.delivered} deliveries for {users} greetings")
    command = f"python -m bench.e2e_sends --users {users} --workers {workers} --threads {threads}"
    shape = f"{workers} workers × {threads} threads"
    raw_note = (
        "baseline: a Dramatiq actor doing only the same POST (bench/raw_drain_actor.py),"
        " same workers, broker and provider"
    )
    return [
        Figure(
            measure=f"send path: {users} due greetings end to end ({shape})",
            command=command,
            project=users / runs.engine,
            baseline=users / runs.raw,
            unit="sends/s",
            better="higher",
            target=0.6,
            note=raw_note,
        ),
        Figure(
            measure=f"send path: {users} due greetings, WORKER_BATCH_LINGER default vs 0",
            command=command,
            project=users / runs.engine,
            baseline=users / runs.unlingered,
            unit="sends/s",
            better="higher",
            note=f"baseline: the same send path with WORKER_BATCH_LINGER=0 (a batch runs only"
            f" what already waits), after the default's run; default"
            f" {Settings.from_env({}).worker_batch_linger.total_seconds() * 1000:g} ms",
        ),
        Figure(
            measure="send path vs POSTs straight to the provider",
            command=command,
            project=users / runs.engine,
            baseline=users / runs.straight,
            unit="sends/s",
            better="higher",
            note=f"baseline: {threads} threads POSTing with requests, no queue",
        ),
        Figure(
            measure=f"worker connections to PostgreSQL ({shape}), peak",
            command=command,
            project=runs.peak,
            baseline=workers * (threads + Settings.from_env({}).db_pool_min_size),
            unit="connections",
            better="lower",
            target=1.0,
            note="baseline: threads + the pool's minimum (DB_POOL_MIN_SIZE) per worker process",
        ),
        Figure(
            measure="send path: CPU per message, every process on the machine",
            command=command,
            project=sum(runs.engine_cpu.values()) * 1000 / users,
            baseline=sum(runs.raw_cpu.values()) * 1000 / users,
            unit="ms",
            better="lower",
            note=f"the send path: {cpu.per_message_text(runs.engine_cpu, users)}; the raw"
            f" drain: {cpu.per_message_text(runs.raw_cpu, users)}. With the cores"
            " saturated, the rates' ratio follows these sums",
        ),
    ]


@contextmanager
def scratch_vhost() -> Iterator[str]:
    """A RabbitMQ vhost of the benchmark's own, deleted at the end."""
    vhost = f"birthday_bench_{uuid.uuid4().hex[:8]}"
    # rabbitmqctl from the operator's PATH, with arguments this script made up.
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True)  # noqa: S603, S607
    permissions = ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"]
    try:
        subprocess.run(permissions, check=True)  # noqa: S603
        yield vhost
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False)  # noqa: S603, S607  same


def _environment(url: str, vhost: str, provider_port: int) -> dict:
    """What every process of the send path gets: scratch database, vhost, Redis db, provider."""
    return {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": REDIS_URL,
        "RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        "EMAIL_SERVICE_URL": f"http://127.0.0.1:{provider_port}",
        "DISPATCH_INTERVAL_SECONDS": "1",
        "PROVIDER_RATE_LIMIT": "100000",
        "LOG_LEVEL": "WARNING",
    }


def _start_provider(
    env: dict, port: int, smtp_port: int | None = None
) -> tuple[subprocess.Popen, str]:
    """The local provider on `port` (and its SMTP side on `smtp_port`, if given); its URL."""
    smtp = "" if smtp_port is None else f"smtp_port={smtp_port}"
    provider_app = f"provider.app:create_app({smtp})"
    gunicorn = [sys.executable, "-m", "gunicorn", "-w", "1", "--threads", "32"]
    process = start([*gunicorn, "-b", f"127.0.0.1:{port}", provider_app], env)
    provider = f"http://127.0.0.1:{port}"
    _wait(lambda: _ok(provider), 20)
    return process, provider


def _engine(
    env: dict, url: str, users: int, workers: int, threads: int
) -> tuple[float, int, Counter[str]]:
    """Seconds for the scheduler and workers to send `users` due greetings; peak
    connections; the CPU each kind of process used meanwhile."""
    _add_due_users(url, users)
    dramatiq = [sys.executable, "-m", "dramatiq", "tasks", "--processes", "1"]
    processes = [start([*dramatiq, "--threads", str(threads)], env) for _ in range(workers)]
    try:
        time.sleep(3)  # workers connected before the first dispatch
        cpu_before = cpu.snapshot()
        started = time.perf_counter()
        processes.append(start([sys.executable, "-m", "tasks.scheduler"], env))
        peak = _watch_until_sent(url, users, 600)
        return time.perf_counter() - started, peak, cpu.used_since(cpu_before)
    finally:
        stop(processes)


def send_path_seconds(url: str, vhost: str, users: int, workers: int, threads: int) -> float:
    """Seconds for `users` due greetings to go end to end on the migrated database `url`
    (any DATABASE_URL, a multi-host one too), with a provider of the run's own."""
    redis.Redis.from_url(REDIS_URL).flushdb()
    port = free_port()
    env = _environment(url, vhost, port)
    provider_process, provider = _start_provider(env, port)
    try:
        seconds, _, _ = _engine(env, url, users, workers, threads)
        if _delivered(provider) != users:
            raise SystemExit(f"{_delivered(provider)} deliveries for {users} greetings")
        return seconds
    finally:
        stop([provider_process])


class Runs(NamedTuple):
    """What one benchmark run measured."""

    engine: float  # seconds of the send path
    raw: float  # seconds of the raw Dramatiq drain
    straight: float  # seconds of the straight POSTs
    peak: int  # worker connections to PostgreSQL, at most
    delivered: int  # greetings the provider received from the send path
    engine_cpu: Counter[str]  # CPU seconds by kind of process, send path
    raw_cpu: Counter[str]  # the same for the raw drain
    unlingered: float  # seconds of the send path again, WORKER_BATCH_LINGER=0


def _run(url: str, vhost: str, users: int, workers: int, threads: int) -> Runs:
    """The engine, the raw drain and the straight POSTs against one provider."""
    redis.Redis.from_url(REDIS_URL).flushdb()
    port = free_port()
    env = _environment(url, vhost, port)
    provider_process, provider = _start_provider(env, port)
    try:
        straight = _baseline(provider, users, threads)
        requests.post(f"{provider}/reset", timeout=5)
        raw, raw_cpu = _raw_drain(env, provider, users, workers, threads)
        requests.post(f"{provider}/reset", timeout=5)
        engine, peak, engine_cpu = _engine(env, url, users, workers, threads)
        delivered = _delivered(provider)
        requests.post(f"{provider}/reset", timeout=5)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("TRUNCATE users CASCADE")
        unlingered_env = {**env, "WORKER_BATCH_LINGER": "0"}
        unlingered, _, _ = _engine(unlingered_env, url, users, workers, threads)
        if _delivered(provider) != users:
            raise SystemExit(f"{_delivered(provider)} deliveries for {users} greetings")
        return Runs(engine, raw, straight, peak, delivered, engine_cpu, raw_cpu, unlingered)
    finally:
        stop([provider_process])


def _add_due_users(url: str, users: int) -> None:
    """`users` users whose birthday greeting is due now, planned as the scheduler plans
    (so the clock measures the send path from due rows on, not the first planning)."""
    now = datetime.now(UTC)
    zone = _due_zone(now)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (first_name, last_name, email, timezone, birthday_date)"
            " SELECT 'Bench', 'User' || n, 'bench' || n || '@example.com', %s, %s"
            " FROM generate_series(1, %s) AS n",
            (zone, now.astimezone(ZoneInfo(zone)).date().replace(year=1990), users),
        )
    settings = Settings.from_env({}, database_url=url)
    pool = create_pool(settings, "birthday-bench", min_size=1, max_size=1)
    with pool:
        plan_all(pool, now, settings.send_time)


def _watch_until_sent(url: str, users: int, timeout: float) -> int:
    """Wait for every greeting SENT; the peak of worker connections seen meanwhile."""
    deadline = time.monotonic() + timeout
    peak = 0
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            sent, workers = conn.execute(
                "SELECT (SELECT count(*) FROM message_logs WHERE status = 'SENT'),"
                " (SELECT count(*) FROM pg_stat_activity"
                "   WHERE datname = current_database()"
                "     AND application_name LIKE 'birthday-worker%%')"
            ).fetchone()
            peak = max(peak, workers)
            if sent == users:
                return peak
            if time.monotonic() > deadline:
                raise SystemExit("timed out")
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    for figure in measure(args.users, args.workers, args.threads):
        print(figure.line())


def _ok(provider: str) -> bool:
    try:
        return requests.get(f"{provider}/health", timeout=1).ok
    except requests.RequestException:
        return False


if __name__ == "__main__":
    main()
