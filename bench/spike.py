"""A spike: N greetings due at the same instant under the provider rate limit.

    python -m bench.spike [--greetings 20000] [--rate 100] [--workers 2] [--threads 8]

`--greetings` users whose birthday is today (UTC), SEND_TIME the next whole minute at
least 40 s ahead, PROVIDER_RATE_LIMIT=`--rate`, QUEUED_LEASE=60s and recovery every
30 s, so the queue outlives the lease several times over while it drains. Measured:
- the time from the instant to the last greeting SENT, against N / rate (the rate
  limit's own queue, the least any sender could take);
- the messages the scheduler published (birthday_greetings_published_total, dispatch
  and recovery), against N;
- each process's resident memory at the end against its own once a tenth is sent (the
  dispatch has queued them all by then);
- and, checked rather than timed: every greeting SENT and delivered once at the provider.
Everything runs on scratch resources of its own, removed at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime

import psycopg
import redis
import requests

from bench.common import free_port, scratch_database, start, stop
from bench.e2e_sends import REDIS_URL, _environment, _start_provider, _wait, scratch_vhost
from bench.on_time import _add_users, _next_whole_minute, _sending_at, _sent
from bench.report import Figure

COMMAND = "python -m bench.spike"
RATE = 100  # PROVIDER_RATE_LIMIT during the spike


def _descendants(pid: int) -> list[int]:
    """`pid` and every process below it (the dramatiq CLI forks its workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(children.get(current, []))
    return found


def _rss_mib(pid: int) -> float:
    """Resident memory of `pid` and its descendants, in MiB."""
    total = 0
    for member in _descendants(pid):
        try:
            with open(f"/proc/{member}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def _published(metrics_url: str) -> float:
    lines = requests.get(metrics_url, timeout=5).text.splitlines()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in lines
        if line.startswith("birthday_greetings_published_total{")
    )


def _deliveries(provider: str) -> tuple[int, int]:
    """(deliveries, requests) the provider recorded."""
    delivered = len(requests.get(f"{provider}/deliveries", timeout=30).json())
    return delivered, len(requests.get(f"{provider}/requests", timeout=30).json())


def _run(url: str, vhost: str, count: int, rate: int, workers: int, threads: int) -> dict:
    redis.Redis.from_url(REDIS_URL).flushdb()
    port, metrics_port = free_port(), free_port()
    instant = _next_whole_minute(datetime.now(UTC))
    _add_users(url, count, instant, "Spike")
    env = {
        **_environment(url, vhost, port),
        **_sending_at(instant),
        "PROVIDER_RATE_LIMIT": str(rate),
        "QUEUED_LEASE": "60s",
        "DISPATCH_INTERVAL_SECONDS": "30",
        "RECOVERY_INTERVAL_SECONDS": "30",
        "SCHEDULER_METRICS_PORT": str(metrics_port),
    }
    provider_process, provider = _start_provider(env, port)
    dramatiq = [sys.executable, "-m", "dramatiq", "tasks", "--processes", "1"]
    names = [f"worker {n + 1}" for n in range(workers)] + ["scheduler"]
    processes = [start([*dramatiq, "--threads", str(threads)], env) for _ in range(workers)]
    processes.append(start([sys.executable, "-m", "tasks.scheduler"], env))
    try:
        # Once the dispatch has handed every greeting to the queue and sending is under way.
        under_way = min(count, max(10 * rate, count // 10))
        _wait(lambda: _sent(url) >= under_way, (instant - _now()).total_seconds() + 300)
        rss_start = {name: _rss_mib(p.pid) for name, p in zip(names, processes, strict=True)}
        _wait(lambda: _sent(url) >= count, 3 * count / rate + 300)
        with psycopg.connect(url) as conn:
            last = conn.execute(
                "SELECT max(actual_send_time) FROM message_logs WHERE status = 'SENT'"
            ).fetchone()[0]
        time.sleep(2)  # let the last metrics and deliveries settle
        rss_end = {name: _rss_mib(p.pid) for name, p in zip(names, processes, strict=True)}
        published = _published(f"http://127.0.0.1:{metrics_port}/metrics")
        delivered, received = _deliveries(provider)
    finally:
        stop(processes)
        stop([provider_process])
    return {
        "seconds": (last - instant).total_seconds(),
        "published": published,
        "delivered": delivered,
        "received": received,
        "rss_start": rss_start,
        "rss_end": rss_end,
    }


def _now() -> datetime:
    return datetime.now(UTC)


def measure(count: int, rate: int, workers: int, threads: int) -> list[Figure]:
    with scratch_database() as url, scratch_vhost() as vhost:
        run = _run(url, vhost, count, rate, workers, threads)
    if run["delivered"] != count:
        raise SystemExit(f"{run['delivered']} deliveries for {count} greetings")
    print(f"provider: {run['delivered']} delivered, {run['received']} requests received")
    command = f"{COMMAND} --greetings {count} --rate {rate} --workers {workers} --threads {threads}"
    figures = [
        Figure(
            measure=f"spike: {count:,} due at one instant, PROVIDER_RATE_LIMIT={rate}, all SENT",
            command=command,
            project=run["seconds"],
            baseline=count / rate,
            unit="s",
            better="lower",
            target=1.1,
            note="baseline: N / rate, the rate limit's own queue",
        ),
        Figure(
            measure=f"spike: messages published for {count:,} greetings (QUEUED_LEASE=60s)",
            command=command,
            project=run["published"],
            baseline=count,
            unit="publishes",
            better="lower",
            target=1.05,
            note="baseline: one publish per greeting",
        ),
        Figure(
            measure=f"spike: requests the provider received for {count:,} greetings",
            command=command,
            project=run["received"],
            baseline=count,
            unit="requests",
            better="lower",
            note="baseline: one request per greeting (a repeat carries the same key)",
        ),
    ]
    for name, start_mib in run["rss_start"].items():
        figures.append(
            Figure(
                measure=f"spike: resident memory of the {name} at the end",
                command=command,
                project=run["rss_end"][name],
                baseline=start_mib,
                unit="MiB",
                better="lower",
                target=1.1,
                note="baseline: the same process once sending was under way",
            )
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--greetings", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=RATE)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    for figure in measure(args.greetings, args.rate, args.workers, args.threads):
        print(figure.line())


if __name__ == "__main__":
    main()
