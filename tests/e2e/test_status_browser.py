"""The status page in a real headless Chromium: sign in, read the figures, press Retry.

The screenshots stay in the test's temporary directory (pytest keeps the last runs
under its base temp dir), as CI artifacts.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta

import psycopg
import pytest
from psycopg.rows import dict_row
from werkzeug.serving import make_server

from api.resources import resources_of
from app import create_app
from seed.loader import seed_database
from tests.browser import Browser, chromium_binary
from tests.factories import ago, make_message, make_user

TOKEN = "browser-test-token-0123456789"

pytestmark = [
    pytest.mark.skipif(
        chromium_binary() is None,
        reason="chromium not installed (Debian package `chromium`; .ci/run installs it)",
    ),
    pytest.mark.timeout(180),
]


@pytest.fixture
def db(fresh_db_url) -> Iterator[psycopg.Connection]:
    with psycopg.connect(fresh_db_url, row_factory=dict_row, autocommit=True) as conn:
        seed_database(conn, 300, random_seed=15, now=datetime.now(UTC), send_time=time(9, 0))
        yield conn


@pytest.fixture
def server(fresh_db_url, db) -> Iterator[str]:
    app = create_app({"DATABASE_URL": fresh_db_url, "API_TOKEN": TOKEN})
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join(timeout=10)
    resources_of(app).pool.close()


@pytest.fixture
def browser(tmp_path) -> Iterator[Browser]:
    chromium = Browser(tmp_path / "profile")
    yield chromium
    chromium.close()


def sign_in(browser: Browser, base: str) -> None:
    browser.open(f"{base}/status")
    browser.wait_for("document.getElementById('login') !== null", "the sign-in form")
    browser.evaluate(
        f"document.querySelector('input[name=token]').value = {json.dumps(TOKEN)};"
        "document.getElementById('login').submit()"
    )
    browser.wait_for(
        "location.pathname === '/status' && document.readyState === 'complete'"
        " && document.querySelector('[data-figure=due-backlog]') !== null",
        "the overview after signing in",
    )


def figure(browser: Browser, name: str) -> str:
    return browser.evaluate(f"document.querySelector('[data-figure={name}]').textContent.trim()")


def day_counts(db: psycopg.Connection, day) -> dict[str, int]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    rows = db.execute(
        "SELECT status, count(*) AS n FROM message_logs"
        " WHERE scheduled_send_time >= %s AND scheduled_send_time < %s GROUP BY status",
        (start, start + timedelta(days=1)),
    ).fetchall()
    return {row["status"]: row["n"] for row in rows}


def test_an_operator_signs_in_checks_the_figures_and_retries_a_failed_greeting(
    browser, server, db, tmp_path
):
    # Given seeded users, one greeting due, and one that the provider refused
    make_message(db, make_user(db), status="SCHEDULED", scheduled=ago(minutes=3))
    failed = make_message(
        db,
        make_user(db),
        status="FAILED",
        scheduled=ago(minutes=1),
        retry_count=5,
        api_response_code=400,
        api_response_body="address rejected",
    )

    # When the operator signs in with the token
    sign_in(browser, server)

    # Then the overview's figures are the database's
    due = db.execute(
        "SELECT count(*) AS n FROM message_logs"
        " WHERE status IN ('SCHEDULED', 'RETRYING') AND next_attempt_at <= now()"
    ).fetchone()["n"]
    assert int(figure(browser, "due-backlog")) == due >= 1
    for offset in (0, 1, 3):
        day = datetime.now(UTC).date() + timedelta(days=offset)
        shown = browser.evaluate(
            f"Object.fromEntries([...document.querySelectorAll('tr[data-day=\"{day}\"] td')]"
            ".map(td => [td.dataset.status, Number(td.textContent)]))"
        )
        expected = day_counts(db, day)
        assert {k: v for k, v in shown.items() if k != "total" and v} == expected, day
        assert shown["total"] == sum(expected.values())
    assert browser.evaluate("document.querySelectorAll('svg[data-chart] rect').length") == 96
    assert browser.evaluate("document.querySelector('.estimate') !== null")
    browser.screenshot(tmp_path / "status-overview.png")

    # When they open the failures and press Retry on the refused greeting
    browser.open(f"{server}/status/failures?status=FAILED")
    listed = browser.evaluate("document.querySelectorAll('tr[data-message]').length")
    expected_failed = db.execute(
        "SELECT count(*) AS n FROM message_logs WHERE status = 'FAILED'"
        " AND scheduled_send_time >= now() - interval '7 days'"
    ).fetchone()["n"]
    assert listed == min(expected_failed, 50)
    row = f'tr[data-message="{failed["id"]}"]'
    assert "address rejected" in browser.evaluate(f"document.querySelector('{row}').textContent")
    browser.evaluate(f"document.querySelector('[data-retry=\"{failed['id']}\"]').click()")
    notice = browser.wait_for(
        "location.search.includes('notice=retried') && document.readyState === 'complete'"
        " && document.getElementById('notice').textContent",
        "the page after Retry",
    )
    browser.screenshot(tmp_path / "status-after-retry.png")

    # Then the greeting is due now and no longer listed
    assert f"Greeting {failed['id']} is due again" in notice
    after = db.execute(
        "SELECT status, next_attempt_at, retry_count FROM message_logs WHERE id = %s",
        (failed["id"],),
    ).fetchone()
    assert after["status"] == "SCHEDULED" and after["retry_count"] == 0
    assert after["next_attempt_at"] <= datetime.now(UTC)
    assert browser.evaluate(f"document.querySelector('{row}') === null")
    for name in ("status-overview.png", "status-after-retry.png"):
        png = (tmp_path / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000, name
    print(f"screenshots: {tmp_path}")
