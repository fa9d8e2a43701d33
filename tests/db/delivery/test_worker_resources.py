"""The worker's composition root: one pool per process, sized for its threads; broker
and leader connections that notice trouble instead of hanging."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import pytest

from config import Settings
from tasks import runtime
from tasks.broker import broker_url, broker_urls
from tasks.leader import LeaderLock


@pytest.fixture
def fresh_runtime(db_url, monkeypatch):
    """No resources built yet in this process; the ones a test builds are closed after."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setattr(runtime, "_current", None)
    yield
    if runtime._current is not None:
        runtime._current.close()


def test_threads_starting_together_share_one_pool(fresh_runtime):
    start = threading.Barrier(8, timeout=10)

    def first_use() -> runtime.WorkerResources:
        start.wait()
        return runtime.current()

    with ThreadPoolExecutor(max_workers=8) as executor:
        built = [f.result() for f in [executor.submit(first_use) for _ in range(8)]]

    assert len({id(resources) for resources in built}) == 1
    assert len({id(resources.pool) for resources in built}) == 1


def test_a_worker_process_pool_holds_at_most_one_connection_per_thread(db_url):
    resources = runtime.WorkerResources.build(Settings.from_env({}, database_url=db_url), 3)
    try:
        assert resources.pool.max_size == 3
        with resources.pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone()
    finally:
        resources.close()


def test_installing_new_resources_closes_the_old_pool(db_url, monkeypatch):
    monkeypatch.setattr(runtime, "_current", None)
    settings = Settings.from_env({}, database_url=db_url)
    old = runtime.WorkerResources.build(settings, 2)
    runtime.install(old)
    new = runtime.WorkerResources.build(settings, 2)

    runtime.install(new)
    try:
        assert old.pool.closed
        assert runtime.current() is new
    finally:
        new.close()


def test_the_broker_url_gets_a_blocked_connection_timeout_and_heartbeat():
    query = parse_qs(urlsplit(broker_url("amqp://guest:guest@127.0.0.1:5672/%2F")).query)

    assert query["blocked_connection_timeout"] == ["30"]
    assert query["heartbeat"] == ["30"]


def test_an_operators_own_broker_timeouts_are_kept():
    url = broker_url("amqp://h:5672/v?blocked_connection_timeout=5&heartbeat=10")

    query = parse_qs(urlsplit(url).query)
    assert (query["blocked_connection_timeout"], query["heartbeat"]) == (["5"], ["10"])
    assert urlsplit(url).path == "/v"


def test_the_leader_lock_connection_bounds_unacknowledged_sends(db_url):
    lock = LeaderLock(Settings.from_env({}, database_url=db_url), "test:1")
    try:
        lock.refresh()
        parameters = lock._conn.info.get_parameters()
        assert parameters["tcp_user_timeout"] == "20000"
        assert parameters["keepalives_idle"] == "5"
    finally:
        lock.close()


def test_each_broker_address_gets_the_timeouts_and_keeps_its_order():
    urls = broker_urls("amqp://rabbit1:5672/%2F,amqp://rabbit2:5672/%2F?heartbeat=10")

    assert [urlsplit(url).hostname for url in urls] == ["rabbit1", "rabbit2"]
    queries = [parse_qs(urlsplit(url).query) for url in urls]
    assert [query["heartbeat"] for query in queries] == [["30"], ["10"]]
    assert all(query["blocked_connection_timeout"] == ["30"] for query in queries)
