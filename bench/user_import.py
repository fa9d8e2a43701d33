"""Benchmark of POST /users/import against the bare COPY of the same file.

    python -m bench.user_import [--users 1000000]

On a scratch database of its own, with the API under gunicorn (one worker, as deployed
otherwise), from CSV files of N generated users (seed/'s generator, each with an
external_id), written once to a temporary directory:
- baseline: the file COPYed as it is into a plain table of text columns (psycopg's COPY
  from this process, the file read in 64 KiB chunks, as the API reads its body);
- first import: the file POSTed to /users/import (streamed): N users created and their
  greetings planned; against the bare COPY plus the planning statement alone (every
  greeting removed, then planned again by one `plan_next_occurrences` for all users);
- the same file again: every row unchanged; against the first import;
- a file with 1% of the rows changed (a last name: the greetings are re-planned) and 1%
  left out, with `delete_missing=true`; against the bare COPY.
The API worker's peak resident memory (VmHWM, reset before each import) is held to a
budget of 300 MiB.
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as clock_time
from pathlib import Path

import psycopg
import requests

from bench.common import free_port, run_alone, start, stop
from bench.report import Figure
from domain.occasions import OCCASIONS
from repositories import occurrences
from repositories.user_imports import FIELDS
from seed.data import SeedGenerator

NOW = datetime.now(UTC)
SEND_TIME = clock_time(9, 0)
CHUNK = 64 * 1024
RSS_BUDGET_MIB = 300
CHANGED_EVERY = 100  # one row in a hundred changed, another left out


def _row(number: int, user, changed: bool) -> list[str]:
    values = {
        "external_id": f"HR-{number}",
        "first_name": user.first_name,
        "last_name": user.last_name + ("-Smith" if changed else ""),
        "email": user.email,
        "timezone": user.timezone,
        "location_city": user.location_city or "",
        "location_country": user.location_country or "",
        "locale": "",
    }
    for field, day in zip(OCCASIONS.date_fields, user.dates, strict=True):
        values[field] = day.isoformat() if day else ""
    return [values[field] for field in FIELDS]


def write_files(directory: Path, users: int) -> tuple[Path, Path]:
    """The full file, and the one with 1% changed and 1% left out."""
    full, changed = directory / "users.csv", directory / "users-changed.csv"
    generator = SeedGenerator(7, NOW, SEND_TIME)
    with full.open("w", newline="") as first, changed.open("w", newline="") as second:
        writers = csv.writer(first), csv.writer(second)
        for writer in writers:
            writer.writerow(FIELDS)
        for number, user in enumerate(generator.users(users)):
            writers[0].writerow(_row(number, user, changed=False))
            kind = number % CHANGED_EVERY
            if kind != 2:
                writers[1].writerow(_row(number, user, changed=kind == 1))
    return full, changed


def bare_copy(url: str, path: Path) -> float:
    """Seconds to COPY the file into a plain table of text columns."""
    columns = ", ".join(f"{field} text" for field in FIELDS)
    with psycopg.connect(url) as conn:
        conn.execute(f"CREATE TABLE bare_import ({columns})")
        conn.commit()
        started = time.perf_counter()
        with (
            conn.cursor() as cursor,
            cursor.copy("COPY bare_import FROM STDIN WITH (FORMAT csv, HEADER)") as copy,
            path.open("rb") as body,
        ):
            while chunk := body.read(CHUNK):
                copy.write(chunk)
        conn.commit()
        seconds = time.perf_counter() - started
        conn.execute("DROP TABLE bare_import")
        conn.commit()
    return seconds


def plan_alone(url: str) -> float:
    """Seconds for the planning statement of every user, its greetings removed first."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE message_logs")
        conn.execute("VACUUM ANALYZE message_logs")
        conn.execute("CHECKPOINT")
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        occurrences.plan_next_occurrences(conn, NOW, SEND_TIME)
        conn.commit()
        return time.perf_counter() - started


@dataclass(frozen=True)
class Import:
    seconds: float
    answer: dict
    peak_mib: float


class Api:
    """The API under gunicorn, one worker; its worker's peak memory per import."""

    def __init__(self, url: str) -> None:
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "LOG_LEVEL": "WARNING",
            "WEB_CONCURRENCY": "1",
            "GUNICORN_THREADS": "4",
        }
        for name in ("API_TOKEN", "API_TOKENS", "API_READ_TOKENS", "API_TOKENS_FILE"):
            env.pop(name, None)
        command = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py"]
        self.process = start([*command, "-b", f"127.0.0.1:{port}", "wsgi:app"], env)
        self.url = f"http://127.0.0.1:{port}"
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/health/live", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise SystemExit("the API did not start")

    def _worker(self) -> int:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        [pid] = children.read_text().split()
        return int(pid)

    def _peak_mib(self) -> float:
        status = Path(f"/proc/{self._worker()}/status").read_text()
        [line] = [line for line in status.splitlines() if line.startswith("VmHWM:")]
        return int(line.split()[1]) / 1024

    def resident_mib(self) -> float:
        status = Path(f"/proc/{self._worker()}/status").read_text()
        [line] = [line for line in status.splitlines() if line.startswith("VmRSS:")]
        return int(line.split()[1]) / 1024

    def post(self, path: Path, query: str = "") -> Import:
        # Writing 5 to clear_refs resets the process's peak resident memory (Linux).
        Path(f"/proc/{self._worker()}/clear_refs").write_text("5")
        started = time.perf_counter()
        with path.open("rb") as body:
            response = requests.post(
                f"{self.url}/users/import{query}",
                data=body,
                headers={"Content-Type": "text/csv"},
                timeout=3600,
            )
        seconds = time.perf_counter() - started
        if response.status_code != 200:
            raise SystemExit(f"import {path.name}{query}: {response.status_code} {response.text}")
        return Import(seconds, response.json(), self._peak_mib())

    def stop(self) -> None:
        stop([self.process])


def _expect(answer: dict, **counts: int) -> None:
    got = {name: answer[name] for name in counts}
    if got != counts or answer["error_count"]:
        raise SystemExit(f"import answered {answer}, expected {counts} and no errors")


def measure(url: str, users: int) -> list[Figure]:
    with tempfile.TemporaryDirectory() as scratch:
        full, changed = write_files(Path(scratch), users)
        size_mib = full.stat().st_size / 2**20
        print(f"files written: {users:,} users, {size_mib:.0f} MiB", flush=True)
        copy_seconds = bare_copy(url, full)
        print(f"  bare COPY: {copy_seconds:.1f} s", flush=True)
        api = Api(url)
        try:
            idle = api.resident_mib()
            first = api.post(full)
            _expect(first.answer, created=users)
            print(f"  first import: {first.seconds:.1f} s, peak {first.peak_mib:.0f} MiB")
            planning_seconds = plan_alone(url)
            print(f"  planning alone: {planning_seconds:.1f} s", flush=True)
            again = api.post(full)
            _expect(again.answer, unchanged=users, updated=0, created=0)
            print(f"  same file again: {again.seconds:.1f} s, peak {again.peak_mib:.0f} MiB")
            third = api.post(changed, "?delete_missing=true")
            expected_deleted = len(range(2, users, CHANGED_EVERY))
            expected_updated = len(range(1, users, CHANGED_EVERY))
            _expect(third.answer, updated=expected_updated, deleted=expected_deleted)
            print(f"  1% changed, 1% removed: {third.seconds:.1f} s, peak {third.peak_mib:.0f} MiB")
        finally:
            api.stop()
    return _figures(users, size_mib, copy_seconds, planning_seconds, first, again, third, idle)


def _figures(
    users: int,
    size_mib: float,
    copy_seconds: float,
    planning_seconds: float,
    first: Import,
    again: Import,
    third: Import,
    idle_mib: float,
) -> list[Figure]:
    command = f"python -m bench.user_import --users {users}"
    setup = (
        f"{users:,} users in a {size_mib:.0f} MiB CSV POSTed (streamed) to /users/import,"
        " gunicorn 1 worker as deployed"
    )
    peak = max(first.peak_mib, again.peak_mib, third.peak_mib)
    return [
        Figure(
            measure=f"import of {users:,} new users from CSV vs bare COPY + planning",
            command=command,
            project=first.seconds,
            baseline=copy_seconds + planning_seconds,
            unit="s",
            better="lower",
            target=2.0,
            note=f"{setup}; baseline: COPY of the file into a plain text table"
            f" ({copy_seconds:.1f} s) + the planning statement for every user alone"
            f" ({planning_seconds:.1f} s)",
        ),
        Figure(
            measure=f"the same file again ({users:,} rows unchanged) vs the first import",
            command=command,
            project=again.seconds,
            baseline=first.seconds,
            unit="s",
            better="lower",
            target=0.5,
            note=f"{setup}; nothing written",
        ),
        Figure(
            measure="1% of the rows changed and 1% left out (delete_missing) vs bare COPY",
            command=command,
            project=third.seconds,
            baseline=copy_seconds,
            unit="s",
            better="lower",
            note=f"{setup}; changed rows re-planned, users left out deleted and their"
            " greetings cancelled",
        ),
        Figure(
            measure="API worker's peak resident memory during an import vs budget",
            command=command,
            project=peak,
            baseline=RSS_BUDGET_MIB,
            unit="MiB",
            better="lower",
            target=1.0,
            note=f"VmHWM of the gunicorn worker, reset before each of the three imports"
            f" (first {first.peak_mib:.0f}, again {again.peak_mib:.0f}, changed"
            f" {third.peak_mib:.0f}); {idle_mib:.0f} MiB before the first; baseline: the"
            " 300 MiB budget",
        ),
    ]


def main() -> None:
    run_alone(measure, __doc__)


if __name__ == "__main__":
    main()
