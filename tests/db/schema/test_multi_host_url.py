"""DATABASE_URL naming several hosts (a primary and its standbys) is read as libpq reads it."""

from __future__ import annotations

import socket

import pytest
from psycopg_pool import ConnectionPool

from db.pool import database_label
from env_values import ConfigError, check_database_url
from schema import admin


def _closed_port() -> int:
    """A local port where nothing listens (bound, read, released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:pw@h1:5432,h2:5433/birthday?target_session_attrs=read-write",
        "postgresql://h1:5432,h2/birthday",
        "host=h1,h2 port=5432,5433 dbname=birthday target_session_attrs=read-write",
    ],
)
def test_multi_host_database_url_is_accepted_and_names_its_database(url: str) -> None:
    check_database_url("DATABASE_URL", url)
    assert admin.database_name(url) == "birthday"
    assert "dbname=postgres" in admin.maintenance_url(url)
    assert "h1,h2" in admin.maintenance_url(url)


@pytest.mark.parametrize(
    "url", ["postgresql://h1:5432,h2:x/birthday", "postgresql://h1,h2/", "mysql://h/db"]
)
def test_bad_database_url_is_refused(url: str) -> None:
    with pytest.raises(ConfigError):
        check_database_url("DATABASE_URL", url)


def test_label_lists_every_host_without_credentials() -> None:
    url = "postgresql://u:secret@h1:5432,h2:5433/birthday?target_session_attrs=read-write"
    pool = ConnectionPool(url, open=False)
    assert database_label(pool) == "h1:5432,h2:5433/birthday"
    assert "secret" not in database_label(pool)


def test_database_created_through_a_multi_host_url_reaches_the_live_host() -> None:
    # Given a URL whose first host is down and whose second is the shared server
    name = f"birthday_test_multihost_{_closed_port()}"
    url = (
        f"postgresql://postgres@127.0.0.1:{_closed_port()},127.0.0.1:5432/{name}"
        "?target_session_attrs=read-write&connect_timeout=3"
    )
    try:
        # When the database is created, then it exists on the live host
        assert admin.ensure_database(url) is True
        assert admin.ensure_database(url) is False
    finally:
        admin.drop_database(url)
