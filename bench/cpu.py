"""CPU time of this machine's processes, by kind, between two instants.

The send path's benchmark uses it to say where the CPU of each message goes (workers,
PostgreSQL, RabbitMQ, the provider, the scheduler, Redis) for the service and for its
baseline over the same clock: on a machine whose cores are saturated, the rate is what
those sum to. Read from /proc (Linux); elsewhere every figure is zero.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

PROC = Path("/proc")
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# How a process is recognised (first match of its command line or its name).
KINDS = (
    ("worker", "dramatiq"),
    ("scheduler", "tasks.scheduler"),
    ("provider", "provider.app"),
    ("postgres", "postgres"),
    ("rabbitmq", "beam.smp"),
    ("redis", "redis-server"),
)


def _kind(pid_dir: Path) -> str | None:
    try:
        command = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        name = (pid_dir / "comm").read_text().strip()
    except OSError:  # the process ended while being read
        return None
    for kind, marker in KINDS:
        if marker in command or marker == name:
            return kind
    return None


def _seconds(pid_dir: Path) -> float:
    try:
        fields = (pid_dir / "stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # utime and stime: fields 14 and 15 of stat, the 12th and 13th after the name.
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND


def snapshot() -> dict[int, tuple[str, float]]:
    """Each recognised process's kind and CPU seconds so far, by pid."""
    if not PROC.is_dir():
        return {}
    found = {}
    for pid_dir in PROC.iterdir():
        if pid_dir.name.isdigit() and (kind := _kind(pid_dir)) is not None:
            found[int(pid_dir.name)] = (kind, _seconds(pid_dir))
    return found


def used_since(before: dict[int, tuple[str, float]]) -> Counter[str]:
    """CPU seconds each kind used since `before` (a process started since counts whole;
    one that ended since is missing)."""
    used: Counter[str] = Counter()
    for pid, (kind, seconds) in snapshot().items():
        previous = before.get(pid)
        start = previous[1] if previous is not None and previous[0] == kind else 0.0
        used[kind] += max(seconds - start, 0.0)
    return used


def per_message_text(used: Counter[str], messages: int) -> str:
    """'5.8 ms CPU per message: worker 2.6, postgres 1.4, …' (largest first)."""
    total = sum(used.values()) * 1000 / messages
    parts = ", ".join(
        f"{kind} {seconds * 1000 / messages:.2f}" for kind, seconds in used.most_common()
    )
    return f"{total:.2f} ms CPU per message ({parts})"
