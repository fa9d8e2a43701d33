"""The send path over SMTP against the send path over HTTP: N due greetings through
scheduler, RabbitMQ, workers and one local provider that speaks both channels.

    python -m bench.smtp_sends [--users 3000] [--workers 2] [--threads 8]

The channels take turns (HTTP, SMTP, HTTP, SMTP) on the same database, vhost, workers'
shape and provider, which is reset between runs; each channel keeps its better run, so
neither pays alone for a cold start. Everything runs on scratch resources of its own
(database, RabbitMQ vhost, Redis db 14, provider ports) that are removed at the end.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import NamedTuple

import psycopg
import redis
import requests

from bench import cpu
from bench.common import free_port, scratch_database, stop
from bench.e2e_sends import (
    REDIS_URL,
    _engine,
    _environment,
    _start_provider,
    scratch_vhost,
)
from bench.report import Figure

CHANNELS = ("http", "smtp")
ROUNDS = 2  # runs of each channel, alternating; the better one counts


class Run(NamedTuple):
    """One run of the send path over one channel."""

    seconds: float  # for every greeting to be SENT
    cpu: Counter[str]  # CPU seconds by kind of process meanwhile


def measure(users: int, workers: int, threads: int) -> list[Figure]:
    """Sends/s and CPU per message over SMTP against over HTTP, same provider."""
    with scratch_database() as url, scratch_vhost() as vhost:
        runs = _runs(url, vhost, users, workers, threads)
    best = {channel: min(runs[channel], key=lambda run: run.seconds) for channel in CHANNELS}
    smtp, http = best["smtp"], best["http"]
    command = f"python -m bench.smtp_sends --users {users} --workers {workers} --threads {threads}"
    rates = "; ".join(
        f"{channel.upper()} " + ", ".join(f"{users / run.seconds:.0f}" for run in runs[channel])
        for channel in CHANNELS
    )
    order = ", ".join(channel.upper() for _ in range(ROUNDS) for channel in CHANNELS)
    return [
        Figure(
            measure=(
                f"send path over SMTP vs over HTTP: {users} due greetings"
                f" ({workers} workers × {threads} threads)"
            ),
            command=command,
            project=users / smtp.seconds,
            baseline=users / http.seconds,
            unit="sends/s",
            better="higher",
            note=(
                "baseline: DELIVERY_CHANNEL=http; both channels against the same local"
                " provider (one process: HTTP on its bind port, SMTP on another), same"
                f" database, vhost and workers; runs in the order {order}, each channel's"
                f" better run kept (all runs, sends/s: {rates})"
            ),
        ),
        Figure(
            measure="CPU per message, SMTP vs HTTP",
            command=command,
            project=sum(smtp.cpu.values()) * 1000 / users,
            baseline=sum(http.cpu.values()) * 1000 / users,
            unit="ms",
            better="lower",
            note=f"every process on the machine, over each channel's better run; SMTP:"
            f" {cpu.per_message_text(smtp.cpu, users)}; HTTP:"
            f" {cpu.per_message_text(http.cpu, users)}",
        ),
    ]


def _runs(url: str, vhost: str, users: int, workers: int, threads: int) -> dict[str, list[Run]]:
    """Each channel's runs, taking turns against one provider serving both."""
    port = free_port()
    smtp_port = free_port()
    while smtp_port == port:
        smtp_port = free_port()
    base = _environment(url, vhost, port)
    environments = {
        "http": {**base, "DELIVERY_CHANNEL": "http"},
        "smtp": {**base, "DELIVERY_CHANNEL": "smtp", "SMTP_URL": f"smtp://127.0.0.1:{smtp_port}"},
    }
    provider_process, provider = _start_provider(base, port, smtp_port)
    runs: dict[str, list[Run]] = {channel: [] for channel in CHANNELS}
    try:
        for round_ in range(1, ROUNDS + 1):
            for channel in CHANNELS:
                _clear(url, provider)
                seconds, _, used = _engine(environments[channel], url, users, workers, threads)
                _check(provider, channel, users)
                runs[channel].append(Run(seconds, used))
                print(
                    f"  {channel} run {round_}: {users / seconds:.0f} sends/s",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        stop([provider_process])
    return runs


def _clear(url: str, provider: str) -> None:
    """No greetings, users, Redis state or deliveries left from a previous run."""
    redis.Redis.from_url(REDIS_URL).flushdb()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM message_logs")
        conn.execute("DELETE FROM users")
    requests.post(f"{provider}/reset", timeout=5).raise_for_status()


def _check(provider: str, channel: str, users: int) -> None:
    """Exactly `users` deliveries arrived, every one over `channel`."""
    deliveries = requests.get(f"{provider}/deliveries", timeout=30).json()
    channels = Counter(delivery.get("channel") for delivery in deliveries)
    if channels != Counter({channel: users}):
        raise SystemExit(f"{dict(channels)} deliveries for {users} greetings over {channel}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    for figure in measure(args.users, args.workers, args.threads):
        print(figure.line())


if __name__ == "__main__":
    main()
