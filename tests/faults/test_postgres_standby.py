"""A scheduler never leads from a standby; it leads from the standby once promoted."""

from __future__ import annotations

import time

import psycopg
import pytest

from config import Settings
from db.pool import create_pool
from tasks.leader import LeaderLock
from tests.faults.conftest import MigratedCluster
from tests.faults.postgres_cluster import PrivatePostgres, Standby

pytestmark = pytest.mark.faults


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


def _multi_host_url(first: PrivatePostgres, second: PrivatePostgres) -> str:
    return (
        f"postgresql://postgres@127.0.0.1:{first.port},127.0.0.1:{second.port}/birthday"
        "?target_session_attrs=read-write"
    )


@pytest.mark.timeout(120)
def test_pool_on_a_multi_host_url_writes_to_the_promoted_standby_by_itself(
    private_postgres: MigratedCluster, standby: Standby
) -> None:
    # Given a pool whose URL names the standby first, then the primary
    settings = Settings(database_url=_multi_host_url(standby, private_postgres))
    pool = create_pool(settings, "failover-test", min_size=1, max_size=2)
    pool.open(wait=True, timeout=30)
    try:
        with pool.connection() as conn:
            row = conn.execute("SELECT pg_is_in_recovery() AS standby").fetchone()
        assert row["standby"] is False  # it skipped the standby
        # When the primary crashes and the standby is promoted
        private_postgres.stop("immediate")
        standby.promote()
        # Then the same pool writes again, on the promoted server, within a bound
        deadline = time.monotonic() + 60
        while True:
            try:
                with pool.connection(timeout=5) as conn:
                    conn.execute("CREATE TABLE IF NOT EXISTS failover_probe (n int)")
                    port = conn.execute("SELECT current_setting('port') AS p").fetchone()["p"]
                break
            except psycopg.Error:
                assert time.monotonic() < deadline, "the pool never reached the new primary"
                time.sleep(0.5)
        assert int(port) == standby.port
    finally:
        pool.close()
