"""Fixtures on the real PostgreSQL: one migrated template per run, clones per need.

- `template_db`: a database migrated once per run by the real runner.
- `db_url`: a session-wide clone of it; each test starts with its tables emptied.
- `fresh_db_url`: a private clone for tests that change the schema (partitions).
- `empty_db_url`: a database with nothing in it (migration tests).
- `app` -> `client` / `runner`: the Flask app on `db_url`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from api.resources import resources_of
from app import create_app
from config import Settings
from db.pool import create_pool
from schema import admin, migrations

SERVER_URL = os.environ.get("TEST_DATABASE_SERVER", "postgresql://postgres@127.0.0.1:5432")
# A deployment with API tokens must say where its unsubscribe links point and sign them
# with a secret of its own (config.py): the tests' processes, started with tokens or
# not, get these (tests of that rule pass their environment explicitly).
TEST_PUBLIC_BASE_URL = "http://127.0.0.1:8000"
TEST_UNSUBSCRIBE_SECRET = "test-unsubscribe-secret-0123456789"
os.environ.setdefault("PUBLIC_BASE_URL", TEST_PUBLIC_BASE_URL)
os.environ.setdefault("UNSUBSCRIBE_SECRET", TEST_UNSUBSCRIBE_SECRET)
DATA_TABLES = (
    "message_logs",
    "users",
    "idempotency_keys",
    "scheduler_heartbeats",
    "planning_state",
    "greeting_templates",
    "suppressions",
    "provider_events",
)


def _new_database_url(prefix: str) -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"{SERVER_URL}/{prefix}_{worker}_{uuid.uuid4().hex[:10]}"


def migrate(url: str) -> None:
    """Apply every migration with the real runner."""
    settings = Settings.from_env({}, database_url=url)
    with psycopg.connect(settings.database_url, autocommit=True, row_factory=dict_row) as conn:
        migrations.upgrade(conn, migrations.discover(), report=lambda line: None)


@pytest.fixture(scope="session")
def template_db() -> Iterator[str]:
    url = _new_database_url("birthday_test_tpl")
    admin.ensure_database(url)
    try:
        migrate(url)
        yield url
    finally:
        admin.drop_database(url)


def _clone(template_url: str, prefix: str) -> str:
    url = _new_database_url(prefix)
    admin.ensure_database(url, template=admin.database_name(template_url))
    return url


@pytest.fixture(scope="session")
def shared_db_url(template_db: str) -> Iterator[str]:
    url = _clone(template_db, "birthday_test")
    try:
        yield url
    finally:
        admin.drop_database(url)


@pytest.fixture
def db_url(shared_db_url: str) -> str:
    """The shared test database with its data tables emptied."""
    with psycopg.connect(shared_db_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(DATA_TABLES)}")
    return shared_db_url


@pytest.fixture
def fresh_db_url(template_db: str) -> Iterator[str]:
    """A migrated database of this test's own, for tests that change the schema."""
    url = _clone(template_db, "birthday_test_fresh")
    try:
        yield url
    finally:
        admin.drop_database(url)


@pytest.fixture
def empty_db_url() -> Iterator[str]:
    """A database with no schema at all."""
    url = _new_database_url("birthday_test_empty")
    admin.ensure_database(url)
    try:
        yield url
    finally:
        admin.drop_database(url)


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    """A connection whose work is rolled back at the end of the test."""
    with psycopg.connect(db_url, row_factory=dict_row, options="-c TimeZone=UTC") as connection:
        yield connection
        connection.rollback()


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection: what it writes is visible to the services' pool at once."""
    with psycopg.connect(
        db_url, autocommit=True, row_factory=dict_row, options="-c TimeZone=UTC"
    ) as connection:
        yield connection


@pytest.fixture
def pool(db_url: str) -> Iterator[ConnectionPool]:
    """A service pool on the test database, as workers and the scheduler build theirs."""
    opened = create_pool(Settings.from_env({}, database_url=db_url), "test")
    opened.open(wait=True)
    yield opened
    opened.close()


@pytest.fixture
def settings(db_url: str) -> Settings:
    """Default settings pointing at the test database."""
    return Settings.from_env({}, database_url=db_url)


@pytest.fixture
def app(db_url: str):
    application = create_app({"DATABASE_URL": db_url, "TESTING": True})
    resources_of(application).pool.open(wait=True, timeout=10)  # as gunicorn's hook does
    yield application
    resources_of(application).pool.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture(scope="module")
def rabbit_url():
    """A RabbitMQ vhost of this test module's own: (name, amqp URL)."""
    from tests.delivery_stack import rabbitmqctl

    vhost = f"birthday_test_{uuid.uuid4().hex[:8]}"
    created = rabbitmqctl("add_vhost", vhost)
    assert created.returncode == 0, created.stderr
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield vhost, f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="module", params=["http", "smtp"])
def provider(request):
    """The local email provider in a process of its own, for this test module; the tests
    that use it run once for each channel: its HTTP API, then its SMTP side (the
    service's processes get DELIVERY_CHANNEL from `environment`)."""
    from tests.delivery_stack import Provider

    server = Provider(channel=request.param)
    yield server
    server.stop()


@pytest.fixture
def stack(fresh_db_url, rabbit_url, provider, tmp_path):
    """Processes of the service on a private database, vhost and the local provider."""
    from tests.delivery_stack import Processes, Stack, environment, reset_shared_state

    vhost, url = rabbit_url
    reset_shared_state(vhost)
    provider.reset()
    processes = Processes(environment(fresh_db_url, url, provider), tmp_path)
    yield Stack(fresh_db_url, vhost, processes, provider)
    processes.stop_all()


# SMTP cannot deduplicate: how many greetings the mail server accepted more than once in
# each test that sent over SMTP (a resend after a crash between the server's 250 and our
# commit; a retry after a refusal is not one), printed at the end of the run
# (docs/design.md quotes it).
SMTP_RESENDS: list[tuple[str, int, int]] = []


@pytest.fixture(autouse=True)
def count_smtp_resends(request) -> Iterator[None]:
    yield
    if "provider" not in request.fixturenames:
        return
    provider = request.getfixturevalue("provider")
    if provider.channel != "smtp":
        return
    accepted = provider.accepted_per_key()
    keys = [key for key in accepted if key]
    if keys:
        resent = sum(1 for key in keys if accepted[key] > 1)
        SMTP_RESENDS.append((request.node.nodeid, len(keys), resent))


def pytest_terminal_summary(terminalreporter) -> None:
    if not SMTP_RESENDS:
        return
    terminalreporter.section("greetings the mail server accepted more than once (SMTP)")
    for nodeid, greetings, resent in SMTP_RESENDS:
        terminalreporter.write_line(f"{resent:>5} of {greetings:>5}  {nodeid}")
    total = sum(greetings for _, greetings, _ in SMTP_RESENDS)
    resent = sum(resent for _, _, resent in SMTP_RESENDS)
    terminalreporter.write_line(f"{resent:>5} of {total:>5}  in all")
