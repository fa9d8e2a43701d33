"""Every benchmark in one run, written to bench/RESULTS.md (`make bench`).

    python -m bench [--users 1000000] [--sends 6000] [--greetings 1000] [--spike 20000]
                    [--workers 2] [--threads 8] [--seconds 10] [--output bench/RESULTS.md]

Each figure runs on scratch resources of its own (database, RabbitMQ vhost, Redis db,
ports) that are removed at the end. The planning benchmark's database (users seeded,
every next occurrence planned) is the one the API benchmark then reads. The delivery
window's dispatch figures, then the import's, come last, each on a database of its own
with --users users.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from bench import (
    api_reads,
    e2e_sends,
    on_time,
    plan_all,
    smtp_sends,
    spike,
    user_import,
    window_dispatch,
)
from bench.common import SERVER, scratch_database
from bench.report import Figure, machine, write_results
from planning import all_users as planning


def _planning_and_api(users: int, seconds: int) -> list[Figure]:
    with scratch_database() as url:
        figures = plan_all.measure(url, users, planning.PLAN_BATCH_SIZE)
        _show(figures)
        reads = api_reads.measure(url, seconds)
        _show(reads)
        return figures + reads


def _window_dispatch(users: int) -> list[Figure]:
    with scratch_database() as url:
        figures = window_dispatch.measure(url, users)
        _show(figures)
        return figures


def _user_import(users: int) -> list[Figure]:
    with scratch_database() as url:
        figures = user_import.measure(url, users)
        _show(figures)
        return figures


def _show(figures: list[Figure]) -> None:
    for figure in figures:
        print(figure.line(), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--sends", type=int, default=6_000)
    parser.add_argument("--greetings", type=int, default=1_000, help="for the on-time figures")
    parser.add_argument("--spike", type=int, default=20_000, help="greetings due at once")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "RESULTS.md")
    args = parser.parse_args()
    sends = e2e_sends.measure(args.sends, args.workers, args.threads)
    _show(sends)
    over_smtp = smtp_sends.measure(args.sends, args.workers, args.threads)
    _show(over_smtp)
    punctual = on_time.measure(args.greetings, args.workers, args.threads)
    _show(punctual)
    spiked = spike.measure(args.spike, spike.RATE, args.workers, args.threads)
    _show(spiked)
    figures = sends + over_smtp + punctual + spiked + _planning_and_api(args.users, args.seconds)
    figures += _window_dispatch(args.users)
    figures += _user_import(args.users)
    command = shlex.join(["python", "-m", "bench", *sys.argv[1:]])
    write_results(args.output, figures, machine(f"{SERVER}/postgres"), command)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
