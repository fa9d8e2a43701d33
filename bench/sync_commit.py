"""What synchronous replication costs the send path: sends/s on a primary whose commits
wait for its standby, against the same primary + standby replicating asynchronously.

    python -m bench.sync_commit [--users 2000] [--workers 2] [--threads 8] [--no-fsync]
                                [--rounds 1]

Builds a private primary and a `pg_basebackup -R` streaming standby (fsync on, as in
production) on free ports, then runs bench.e2e_sends' send path twice on a multi-host
DATABASE_URL, each time on a fresh database: first with the defaults (asynchronous),
then with `synchronous_commit = on` and `synchronous_standby_names` naming the standby;
with `--rounds N` the two alternate N times and each side's median counts, so a load
that drifts during the run weighs on both.
The cluster, the RabbitMQ vhost and the processes are removed at the end.

The cluster builder is the fault tests' (tests/faults/postgres_cluster.py), which
imports nothing but psycopg and the standard library: one copy of the initdb, start,
crash and basebackup steps rather than a second one here.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from bench.common import free_port
from bench.e2e_sends import scratch_vhost, send_path_seconds
from bench.report import Figure
from schema import migrations
from tests.faults.postgres_cluster import PrivatePostgres, Standby


@contextmanager
def primary_and_standby(fsync: bool = True) -> Iterator[tuple[PrivatePostgres, Standby]]:
    """A running private primary and its streaming standby; removed at the end."""
    primary = PrivatePostgres(free_port(), fsync=fsync)
    try:
        primary.start()
        standby = Standby(primary, free_port())
        try:
            standby.start()
            yield primary, standby
        finally:
            standby.remove()
    finally:
        primary.remove()


def replicate(primary: PrivatePostgres, standby: Standby, synchronous: bool) -> None:
    """Make the primary's commits wait for `standby` (or not), and wait until it says so."""
    names = f"FIRST 1 ({standby.name})" if synchronous else ""
    expected = "sync" if synchronous else "async"
    with psycopg.connect(primary.url("postgres"), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET synchronous_commit = 'on'")
        conn.execute(
            sql.SQL("ALTER SYSTEM SET synchronous_standby_names = {}").format(sql.Literal(names))
        )
        conn.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 20
        while _sync_state(conn, standby) != expected:
            if time.monotonic() > deadline:
                state = _sync_state(conn, standby)
                raise SystemExit(f"the standby reports {state}, expected {expected}")
            time.sleep(0.2)


def _sync_state(conn: psycopg.Connection, standby: Standby) -> str | None:
    row = conn.execute(
        "SELECT sync_state FROM pg_stat_replication WHERE application_name = %s",
        (standby.name,),
    ).fetchone()
    return row[0] if row else None


def _fresh_database(primary: PrivatePostgres, standby: Standby, name: str) -> str:
    """A new migrated database on the primary; its multi-host URL."""
    with psycopg.connect(primary.url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(primary.url(name), autocommit=True) as conn:
        migrations.upgrade(conn, migrations.discover(), report=lambda line: None)
    return (
        f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/{name}"
        "?target_session_attrs=read-write"
    )


def _rate(
    pair: tuple[PrivatePostgres, Standby], synchronous: bool, shape: tuple, round_: int
) -> float:
    primary, standby = pair
    users, workers, threads = shape
    replicate(primary, standby, synchronous)
    name = f"birthday_{'sync' if synchronous else 'async'}_{round_}"
    url = _fresh_database(primary, standby, name)
    with scratch_vhost() as vhost:
        return users / send_path_seconds(url, vhost, users, workers, threads)


def measure(
    users: int, workers: int, threads: int, fsync: bool = True, rounds: int = 1
) -> list[Figure]:
    """Sends/s with synchronous_commit=on and one synchronous standby vs asynchronous.

    `fsync=False` leaves out the local flush, so the ratio shows the wait for the standby.
    """
    shape = (users, workers, threads)
    rates: dict[bool, list[float]] = {False: [], True: []}
    with primary_and_standby(fsync) as pair:
        for round_ in range(rounds):
            for synchronous in (False, True):
                rates[synchronous].append(_rate(pair, synchronous, shape, round_))
    asynchronous, synchronous = (statistics.median(rates[side]) for side in (False, True))
    command = (
        f"python -m bench.sync_commit --users {users} --workers {workers} --threads {threads}"
        + ("" if fsync else " --no-fsync")
        + (f" --rounds {rounds}" if rounds > 1 else "")
    )
    return [
        Figure(
            measure=(
                f"send path with synchronous replication, {users} greetings "
                f"({workers} workers × {threads} threads)"
            ),
            command=command,
            project=synchronous,
            baseline=asynchronous,
            unit="sends/s",
            better="higher",
            note=(
                "synchronous_commit=on + synchronous_standby_names='FIRST 1 (standby)'; "
                "baseline: the same private primary + streaming standby "
                f"(fsync {'on' if fsync else 'off'}), asynchronous; median of {rounds} "
                "alternating round(s) each"
            ),
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--no-fsync", dest="fsync", action="store_false")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    for figure in measure(args.users, args.workers, args.threads, args.fsync, args.rounds):
        print(figure.line(), flush=True)


if __name__ == "__main__":
    main()
