import json
import socket
import time
from datetime import datetime, timedelta

import psycopg

from api.resources import resources_of
from app import create_app
from config import Settings
from db.pool import create_pool
from operations import health
from schema import migrations


def _closed_port() -> int:
    """A local port where nothing listens (bound, read, released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_liveness_answers_without_touching_dependencies():
    app = create_app({"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{_closed_port()}/none"})
    try:
        response = app.test_client().get("/health/live")
        assert response.status_code == 200
        assert response.get_json() == {"status": "ok"}
        # The pool was never opened: liveness needs no database.
        assert resources_of(app).pool.closed
    finally:
        resources_of(app).pool.close()


def test_health_db_reports_latency_pool_and_current_migrations(client):
    response = client.get("/health/db")

    body = response.get_json()
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert body["latency_ms"] >= 0
    assert body["server_version"].startswith("15")
    assert body["migrations"]["pending"] == 0
    assert body["migrations"]["current"] == migrations.discover()[-1].version
    assert body["pool"]["max"] == 20
    assert set(body["pool"]) >= {"size", "available", "waiting"}


def _heartbeat(db_url: str, age: timedelta) -> None:
    """The row a live leader scheduler writes after each dispatch."""
    with psycopg.connect(db_url) as conn:
        conn.execute("DELETE FROM scheduler_heartbeats")
        conn.execute(
            "INSERT INTO scheduler_heartbeats (job, leader, last_started_at, last_success_at)"
            " VALUES ('dispatch', 'host:1', now() - %(age)s, now() - %(age)s)",
            {"age": age},
        )


def test_health_lists_each_dependency_and_is_ok_with_a_live_scheduler(client, db_url):
    _heartbeat(db_url, timedelta(seconds=5))

    response = client.get("/health")

    body = response.get_json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "rabbitmq", "redis", "scheduler", "provider_breaker"}
    assert all(check["status"] == "ok" for check in body["checks"].values())
    assert body["checks"]["scheduler"]["leader"] == "host:1"
    assert body["checks"]["provider_breaker"]["state"] == "closed"


def test_health_is_503_when_the_scheduler_heartbeat_is_stale(client, db_url):
    _heartbeat(db_url, timedelta(minutes=10))

    response = client.get("/health")

    assert response.status_code == 503
    assert response.get_json()["checks"]["scheduler"]["status"] == "unavailable"
    assert response.get_json()["checks"]["database"]["status"] == "ok"


def test_health_is_503_within_3_seconds_when_broker_and_redis_are_unreachable(db_url):
    _heartbeat(db_url, timedelta(seconds=5))
    app = create_app(
        {
            "DATABASE_URL": db_url,
            "RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:{_closed_port()}/%2F",
            "REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/0",
        }
    )
    try:
        started = time.monotonic()
        response = app.test_client().get("/health")
        elapsed = time.monotonic() - started
    finally:
        resources_of(app).pool.close()

    checks = response.get_json()["checks"]
    assert response.status_code == 503
    assert checks["rabbitmq"]["status"] == "unavailable"
    assert checks["redis"]["status"] == "unavailable"
    assert checks["database"]["status"] == "ok"
    assert elapsed < 3.0


def test_an_open_provider_breaker_makes_the_service_degraded_not_down(client, db_url):
    import redis

    from channels.guards import BREAKER_STATE_KEY

    _heartbeat(db_url, timedelta(seconds=5))
    store = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    key = BREAKER_STATE_KEY
    previous = store.get(key)
    store.set(key, "open")
    try:
        response = client.get("/health")
    finally:
        store.set(key, previous) if previous is not None else store.delete(key)

    assert response.status_code == 200
    assert response.get_json()["status"] == "degraded"
    assert response.get_json()["checks"]["provider_breaker"]["state"] == "open"


def test_health_db_is_503_within_3_seconds_when_nothing_listens():
    port = _closed_port()
    app = create_app({"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/birthday"})
    try:
        started = time.monotonic()
        response = app.test_client().get("/health/db")
        elapsed = time.monotonic() - started
        readiness = app.test_client().get("/health")
    finally:
        resources_of(app).pool.close()

    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert "no database connection" in body["reason"]
    assert set(body) >= {"latency_ms", "server_version", "pool", "migrations"}
    assert elapsed < 3.0
    assert readiness.status_code == 503
    assert readiness.get_json()["checks"]["database"]["status"] == "unavailable"
    assert readiness.get_json()["checks"]["scheduler"]["status"] == "unknown"


def test_health_db_is_503_while_migrations_are_pending(empty_db_url):
    app = create_app({"DATABASE_URL": empty_db_url})
    try:
        response = app.test_client().get("/health/db")
    finally:
        resources_of(app).pool.close()

    assert response.status_code == 503
    assert response.get_json()["migrations"]["pending"] == len(migrations.discover())
    assert "pending" in response.get_json()["reason"]


def test_db_health_command_prints_the_report_and_exits_zero(runner):
    result = runner.invoke(args=["db", "health"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["status"] == "ok"


def test_db_health_command_exits_non_zero_when_unreachable():
    app = create_app({"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{_closed_port()}/x"})
    try:
        result = app.test_cli_runner().invoke(args=["db", "health"])
    finally:
        resources_of(app).pool.close()

    assert result.exit_code == 1
    assert json.loads(result.output)["status"] == "unavailable"


def test_rabbitmq_is_ready_when_a_later_address_answers():
    down = f"amqp://guest:guest@127.0.0.1:{_closed_port()}/%2F"
    settings = Settings.from_env({"RABBITMQ_URL": f"{down},amqp://guest:guest@127.0.0.1:5672/%2F"})

    assert health.check_rabbitmq(settings)["status"] == "ok"


def test_rabbitmq_is_unavailable_within_the_check_time_naming_every_address_tried():
    ports = [_closed_port(), _closed_port()]
    raw = ";".join(f"amqp://guest:secret@127.0.0.1:{port}/%2F" for port in ports)
    started = time.monotonic()

    report = health.check_rabbitmq(Settings.from_env({"RABBITMQ_URL": raw}))

    assert time.monotonic() - started < health.CHECK_TIMEOUT + 0.5
    assert report["status"] == "unavailable"
    assert all(f"127.0.0.1:{port}" in report["reason"] for port in ports)
    assert "secret" not in report["reason"]


SKEW = timedelta(minutes=10)


class _ClockAhead(datetime):
    """A host whose clock runs SKEW ahead of the database's."""

    @classmethod
    def now(cls, tz=None):
        return datetime.now(tz) + SKEW


class _ClockBehind(datetime):
    """A host whose clock runs SKEW behind the database's."""

    @classmethod
    def now(cls, tz=None):
        return datetime.now(tz) - SKEW


def test_an_api_host_whose_clock_runs_ahead_still_sees_a_live_scheduler(
    client, db_url, monkeypatch
):
    import api.health

    _heartbeat(db_url, timedelta(seconds=5))  # written by the database's clock
    monkeypatch.setattr(api.health, "datetime", _ClockAhead, raising=False)

    response = client.get("/health")

    assert response.get_json()["checks"]["scheduler"]["status"] == "ok", response.get_json()


def test_a_scheduler_host_whose_clock_lags_still_counts_as_live(client, db_url, monkeypatch):
    import tasks.scheduler
    from tasks.leader import LeaderLock

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM scheduler_heartbeats")
    settings = Settings.from_env({}, database_url=db_url)
    pool = create_pool(settings, "test-scheduler")
    pool.open(wait=True, timeout=10)
    leader = LeaderLock(settings, "lagging:1")
    scheduler = tasks.scheduler.Scheduler(
        settings,
        lambda message_id, occasion_date: None,
        name="lagging:1",
        pool=pool,
        leader=leader,
        due_watch=None,
        messages_in_queue=lambda: 0,
    )
    monkeypatch.setattr(tasks.scheduler, "datetime", _ClockBehind)
    try:
        scheduler._run("dispatch", lambda now: None)  # a dispatch with nothing to do
    finally:
        leader.close()
        pool.close()

    response = client.get("/health")

    assert response.get_json()["checks"]["scheduler"]["status"] == "ok", response.get_json()
