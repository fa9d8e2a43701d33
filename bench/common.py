"""What every benchmark needs: a scratch database, free ports, processes it starts and ends."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from schema import admin, migrations

ROOT = Path(__file__).resolve().parent.parent
SERVER = "postgresql://postgres@127.0.0.1:5432"


@contextmanager
def scratch_database() -> Iterator[str]:
    """The URL of a new, migrated database of the benchmark's own; dropped at the end."""
    url = f"{SERVER}/birthday_bench_{uuid.uuid4().hex[:8]}"
    admin.ensure_database(url)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrations.upgrade(conn, migrations.discover(), report=lambda line: None)
        yield url
    finally:
        admin.drop_database(url)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(command: list[str], env: dict) -> subprocess.Popen:
    """Start one of the benchmark's processes in a process group of its own."""
    # The benchmark's own fixed commands (the service's processes), never outside input.
    return subprocess.Popen(  # noqa: S603
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(processes: list[subprocess.Popen]) -> None:
    """SIGTERM each process group, then wait for each."""
    for process in processes:
        os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        process.wait(timeout=30)


def run_alone(measure: Callable[[str, int], list], description: str | None) -> None:
    """`python -m bench.<module> [--users N]`: the module's `measure(url, users)` on a
    scratch database of its own, each figure printed."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--users", type=int, default=1_000_000)
    args = parser.parse_args()
    with scratch_database() as url:
        for figure in measure(url, args.users):
            print(figure.line())
