"""A scheduler never leads from a standby; it leads from the standby once promoted."""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest

from config import Settings
from tasks.leader import LeaderLock
from tests.delivery_stack import free_port
from tests.faults.conftest import MigratedCluster
from tests.faults.postgres_cluster import BIN, PrivatePostgres, _as_postgres

pytestmark = pytest.mark.faults


class Standby(PrivatePostgres):
    """A streaming standby of `primary`, copied with `pg_basebackup -R`."""

    def __init__(self, primary: PrivatePostgres, port: int) -> None:
        self.port = port
        self.parent = Path(primary.parent.parent) / f"birthday-standby-{port}"
        self.parent.mkdir()
        self.data = self.parent / "data"
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.parent, account.pw_uid, account.pw_gid)
        try:
            done = _as_postgres(
                str(BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
                "-U", "postgres", "-D", str(self.data), "-R", "-X", "stream", "-c", "fast",
            )  # fmt: skip
        except BaseException:
            self.remove()
            raise
        if done.returncode != 0:
            self.remove()
            raise RuntimeError(f"pg_basebackup failed: {done.stderr}")

    def promote(self) -> None:
        done = _as_postgres(str(BIN / "pg_ctl"), "-D", str(self.data), "-w", "promote")
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl promote failed: {done.stderr}")


@pytest.fixture
def standby(private_postgres: MigratedCluster) -> Iterator[Standby]:
    server = Standby(private_postgres, free_port())
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.mark.timeout(120)
def test_scheduler_takes_no_lock_on_a_standby_until_it_is_promoted(
    private_postgres: MigratedCluster, standby: Standby
) -> None:
    # Given a leader lock pointed at the standby alone (no target_session_attrs)
    lock = LeaderLock(Settings(database_url=standby.url("birthday")), "on-standby")
    try:
        # Then it does not lead while the server is in recovery
        assert lock.refresh() is False
        # When the primary crashes and the standby is promoted
        private_postgres.stop("immediate")
        standby.promote()
        lock.close()
        # Then the lock is taken there
        assert lock.refresh() is True
    finally:
        lock.close()
