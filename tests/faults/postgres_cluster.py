"""Private PostgreSQL 15 clusters for fault tests and benchmarks: a primary, started,
stopped and crashed at will, and streaming standbys of it, promoted at will.

Never the machine's shared server: each cluster lives in a temporary directory owned
by the `postgres` user (initdb refuses to run as root), listens on a free port of
127.0.0.1 and is removed at the end. The module imports nothing else of the tests, so
the benchmarks reuse it (bench/sync_commit.py).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres(*command: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run a server command as the postgres user (or as is, when not root)."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run(
        [*prefix, *command], capture_output=True, text=True, timeout=timeout, check=False
    )


def _directory_for_postgres(path: Path) -> None:
    """Hand `path` to the postgres user when running as root (initdb refuses root)."""
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        os.chown(path, account.pw_uid, account.pw_gid)


class PrivatePostgres:
    """One cluster: `start()`, `stop(mode)`, `url(database)`, `remove()`.

    `fsync=False` (the default) suits tests: a crash is `pg_ctl stop -m immediate`, the
    machine stays up, and nothing needs to reach the disk. Benchmarks of commit costs
    pass `fsync=True`.
    """

    def __init__(self, port: int, fsync: bool = False) -> None:
        self.port = port
        self.fsync = fsync
        self.parent = Path(tempfile.mkdtemp(prefix="birthday-pg-"))
        self.data = self.parent / "data"
        _directory_for_postgres(self.parent)
        initdb = [str(BIN / "initdb"), "-A", "trust", "-U", "postgres", "-D", str(self.data)]
        done = _as_postgres(*initdb, "--no-sync")
        if done.returncode != 0:
            self.remove()
            raise RuntimeError(f"initdb failed: {done.stderr}")

    @property
    def server_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def url(self, database: str) -> str:
        return f"{self.server_url}/{database}"

    def is_running(self) -> bool:
        done = _as_postgres(str(BIN / "pg_ctl"), "-D", str(self.data), "status", timeout=10)
        return done.returncode == 0

    def start(self) -> float:
        """Start the server and wait until it accepts queries; returns the seconds taken."""
        started = time.monotonic()
        options = (
            f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
            f" -c fsync={'on' if self.fsync else 'off'} -c max_connections=200"
        )
        pg_ctl = [str(BIN / "pg_ctl"), "-D", str(self.data), "-o", options]
        done = _as_postgres(*pg_ctl, "-l", str(self.data / "server.log"), "-w", "-t", "60", "start")
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {done.stderr}{self.server_log()}")
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(f"{self.server_url}/postgres", connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return time.monotonic() - started
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` ends sessions cleanly, `immediate` is a crash."""
        if not self.is_running():
            return
        done = _as_postgres(
            str(BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"
        )
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed: {done.stderr}")

    def server_log(self) -> str:
        path = self.data / "server.log"
        return path.read_text()[-3000:] if path.exists() else ""

    def remove(self) -> None:
        """Stop the server if it runs, then delete its directory."""
        if self.data.exists():
            try:
                self.stop("immediate")
            finally:
                shutil.rmtree(self.parent, ignore_errors=True)
        else:
            shutil.rmtree(self.parent, ignore_errors=True)


class Standby(PrivatePostgres):
    """A streaming standby of `primary`, copied with `pg_basebackup -R`.

    It connects to the primary as `application_name` = `name` (by default
    `standby_<port>`), the name `synchronous_standby_names` refers to.
    """

    def __init__(self, primary: PrivatePostgres, port: int, name: str | None = None) -> None:
        self.port = port
        self.fsync = primary.fsync
        self.name = name or f"standby_{port}"
        self.parent = Path(primary.parent.parent) / f"birthday-standby-{port}"
        self.parent.mkdir()
        self.data = self.parent / "data"
        _directory_for_postgres(self.parent)
        # -R writes primary_conninfo (with this application_name) and standby.signal.
        source = f"host=127.0.0.1 port={primary.port} user=postgres application_name={self.name}"
        basebackup = [
            str(BIN / "pg_basebackup"),
            "-d",
            source,
            "-D",
            str(self.data),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
        ]
        try:
            done = _as_postgres(*basebackup)
        except BaseException:
            self.remove()
            raise
        if done.returncode != 0:
            self.remove()
            raise RuntimeError(f"pg_basebackup failed: {done.stderr}")

    def promote(self) -> None:
        """End recovery: the standby becomes a primary that takes writes."""
        done = _as_postgres(str(BIN / "pg_ctl"), "-D", str(self.data), "-w", "promote")
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl promote failed: {done.stderr}")
