"""A private PostgreSQL 15 cluster for fault tests: started, stopped and crashed at will.

Never the machine's shared server: each cluster lives in a temporary directory owned
by the `postgres` user (initdb refuses to run as root), listens on a free port of
127.0.0.1 and is removed at the end.
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


class PrivatePostgres:
    """One cluster: `start()`, `stop(mode)`, `url(database)`, `remove()`."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.parent = Path(tempfile.mkdtemp(prefix="birthday-pg-"))
        self.data = self.parent / "data"
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.parent, account.pw_uid, account.pw_gid)
        done = _as_postgres(
            str(BIN / "initdb"), "-A", "trust", "-U", "postgres", "-D", str(self.data),
            "--no-sync",
        )  # fmt: skip
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
            f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c max_connections=200"
        )
        done = _as_postgres(
            str(BIN / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.data / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip
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
