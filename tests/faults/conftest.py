"""Fixtures for fault tests: a private PostgreSQL cluster with a migrated database, and
a streaming standby of it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import migrate
from tests.delivery_stack import free_port
from tests.faults.postgres_cluster import BIN, PrivatePostgres, Standby

DATABASE = "birthday"


def _can_run_a_cluster() -> bool:
    if not (BIN / "initdb").exists():
        return False
    return os.geteuid() != 0 or shutil.which("runuser") is not None


class MigratedCluster(PrivatePostgres):
    """A private cluster holding one migrated database, `url`."""

    @property
    def db_url(self) -> str:
        return self.url(DATABASE)


@pytest.fixture
def private_postgres(tmp_path: Path) -> Iterator[MigratedCluster]:
    """A running private cluster on a free port with database `birthday` migrated.

    Removed at the end (stopped, directory deleted) whatever the test did to it.
    """
    if not _can_run_a_cluster():
        pytest.skip(f"needs PostgreSQL 15 server binaries in {BIN}")
    cluster = MigratedCluster(free_port())
    try:
        cluster.start()
        with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        migrate(cluster.db_url)
        yield cluster
    finally:
        log = cluster.server_log()
        cluster.remove()
        (tmp_path / "postgres-server.log").write_text(log)


@pytest.fixture
def standby(private_postgres: MigratedCluster, tmp_path: Path) -> Iterator[Standby]:
    """A running streaming standby of `private_postgres`; removed at the end."""
    server = Standby(private_postgres, free_port())
    try:
        server.start()
        yield server
    finally:
        log = server.server_log()
        server.remove()
        (tmp_path / "standby-server.log").write_text(log)
