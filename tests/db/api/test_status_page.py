"""/status: the figures, the lists, the Retry button and who may see them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.rows import dict_row

from api.resources import resources_of
from app import create_app
from tests.factories import ago, ahead, make_message, make_user

TOKEN = "status-token-for-tests-only"


@pytest.fixture
def db(db_url):
    with psycopg.connect(db_url, row_factory=dict_row, autocommit=True) as conn:
        yield conn


def figure(html: str, name: str) -> str:
    match = re.search(rf'data-figure="{name}">([^<]*)<', html)
    assert match, f"no figure {name}"
    return match.group(1)


def csrf_of(client, path: str = "/status/login") -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_the_overview_shows_backlog_and_last_hour_figures_from_the_database(client, db):
    make_message(db, make_user(db), status="SCHEDULED", scheduled=ago(minutes=20))
    make_message(db, make_user(db), status="RETRYING", scheduled=ago(minutes=5))
    make_message(
        db,
        make_user(db),
        status="SENT",
        scheduled=ago(minutes=30),
        actual_send_time=ago(minutes=29),
    )
    make_message(
        db, make_user(db), status="SENT", scheduled=ago(hours=3), actual_send_time=ago(hours=3)
    )
    make_message(
        db,
        make_user(db),
        status="FAILED",
        scheduled=ago(minutes=40),
        retry_count=5,
        last_retry_at=ago(minutes=10),
    )

    html = client.get("/status").get_data(as_text=True)

    assert figure(html, "due-backlog") == "2"
    assert 1190 <= int(figure(html, "oldest-due-age")) <= 1300
    assert figure(html, "sent-last-hour") == "1"
    assert figure(html, "failed-last-hour") == "1"
    assert figure(html, "retried-last-hour") == "1"
    assert figure(html, "expired-last-hour") == "0"


def test_the_overview_counts_greetings_by_day_and_status(client, db):
    for _ in range(3):
        make_message(db, make_user(db), status="SCHEDULED", scheduled=ahead(days=2))
    make_message(db, make_user(db), status="CANCELLED", scheduled=ahead(days=2))
    make_message(db, make_user(db), status="SCHEDULED", scheduled=ahead(days=9))  # past the week
    day = ahead(days=2).date().isoformat()

    html = client.get("/status").get_data(as_text=True)

    row = re.search(rf'<tr data-day="{day}">(.*?)</tr>', html, re.S).group(1)
    assert '<td data-status="SCHEDULED">3</td>' in row
    assert '<td data-status="CANCELLED">1</td>' in row
    assert '<td data-status="total">4</td>' in row
    assert len(re.findall(r"<tr data-day=", html)) == 8


def test_the_charts_draw_one_bar_per_hour_and_count_the_sends(client, db):
    make_message(
        db, make_user(db), status="SENT", scheduled=ago(hours=5), actual_send_time=ago(hours=5)
    )
    make_message(db, make_user(db), status="SCHEDULED", scheduled=ahead(hours=3))

    html = client.get("/status").get_data(as_text=True)

    sent = re.search(r'<svg[^>]*data-chart="sent" data-total="(\d+)">(.*?)</svg>', html, re.S)
    due = re.search(r'<svg[^>]*data-chart="due" data-total="(\d+)">(.*?)</svg>', html, re.S)
    assert sent.group(1) == "1" and due.group(1) == "1"
    assert sent.group(2).count("<rect") == 48 and due.group(2).count("<rect") == 48
    assert "<script" not in html and "http://" not in html.replace('xmlns="http://', "")


def test_a_default_partition_holding_rows_is_warned_about(client, db):
    assert "default-partition-warning" not in client.get("/status").get_data(as_text=True)
    resources_of(client.application).status_summary.seconds = 0

    make_message(db, make_user(db), scheduled=datetime(2100, 1, 5, 9, tzinfo=UTC))

    html = client.get("/status").get_data(as_text=True)
    assert 'id="default-partition-warning"' in html
    assert int(figure(html, "future-partitions")) >= 1
    assert "estimate" in html


def test_upcoming_lists_the_next_day_in_utc_and_the_users_local_time(client, db):
    tokyo = make_user(db, timezone="Asia/Tokyo")
    soon = make_message(db, tokyo, scheduled=ahead(hours=2))
    later = make_message(db, make_user(db), scheduled=ahead(hours=30))

    html = client.get("/status/upcoming").get_data(as_text=True)

    assert f'data-message="{soon["id"]}"' in html
    assert f'data-message="{later["id"]}"' not in html
    local = soon["scheduled_send_time"].astimezone(ZoneInfo("Asia/Tokyo"))
    assert f"{local:%Y-%m-%d %H:%M} Asia/Tokyo" in html
    assert f'href="/messages/{soon["id"]}"' in html
    by_hour = re.search(r'<details id="by-hour">(.*?)</details>', html, re.S).group(1)
    assert by_hour.count("<tr><td>") == 24
    assert "<td>1</td>" in by_hour  # the greeting due in two hours


def test_upcoming_pages_and_filters_by_type(client, db):
    for n in range(55):
        make_message(db, make_user(db), scheduled=ahead(hours=1, minutes=n))
    make_message(db, make_user(db), scheduled=ahead(hours=2), message_type="ANNIVERSARY")

    first = client.get("/status/upcoming").get_data(as_text=True)
    second = client.get("/status/upcoming?page=2").get_data(as_text=True)
    anniversaries = client.get("/status/upcoming?type=ANNIVERSARY").get_data(as_text=True)

    assert first.count("<tr data-message=") == 50 and "page 1 of 2" in first
    assert second.count("<tr data-message=") == 6
    assert anniversaries.count("<tr data-message=") == 1


def test_failures_show_the_providers_answer_and_a_retry_button(client, db):
    failed = make_message(
        db,
        make_user(db),
        status="FAILED",
        scheduled=ago(hours=2),
        api_response_code=422,
        api_response_body="mailbox unknown",
        error_message="permanent",
    )
    make_message(db, make_user(db), status="SENT", scheduled=ago(hours=2))

    html = client.get("/status/failures").get_data(as_text=True)

    assert html.count("<tr data-message=") == 1
    assert "mailbox unknown" in html and "<code>422</code>" in html
    assert f'data-retry="{failed["id"]}"' in html


def test_retry_makes_a_failed_greeting_due_now(client, db):
    failed = make_message(db, make_user(db), status="FAILED", scheduled=ago(hours=2))
    token = csrf_of(client)

    response = client.post(
        f"/status/messages/{failed['id']}/retry",
        data={"csrf_token": token, "next": "/status/failures"},
    )

    assert response.status_code == 303
    assert response.headers["Location"].startswith("/status/failures?notice=retried")
    row = db.execute(
        "SELECT status, next_attempt_at FROM message_logs WHERE id = %s", (failed["id"],)
    ).fetchone()
    assert row["status"] == "SCHEDULED" and row["next_attempt_at"] <= datetime.now(UTC)
    notice = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"Greeting {failed['id']} is due again" in notice


def test_a_second_retry_from_the_same_page_shows_its_own_notice(client, db):
    first, second = (
        make_message(db, make_user(db), status="FAILED", scheduled=ago(hours=h)) for h in (1, 2)
    )
    token = csrf_of(client)
    back = client.post(
        f"/status/messages/{first['id']}/retry",
        data={"csrf_token": token, "next": "/status/failures?days=3"},
    ).headers["Location"]
    page = client.get(back).get_data(as_text=True)
    next_url = re.search(r'name="next" value="([^"]+)"', page).group(1).replace("&amp;", "&")

    again = client.post(
        f"/status/messages/{second['id']}/retry", data={"csrf_token": token, "next": next_url}
    )

    html = client.get(again.headers["Location"]).get_data(as_text=True)
    assert f"Greeting {second['id']} is due again" in html
    assert "days=3" in again.headers["Location"]


def test_retry_without_the_csrf_token_changes_nothing(client, db):
    failed = make_message(db, make_user(db), status="FAILED", scheduled=ago(hours=2))
    csrf_of(client)  # the cookie is set, the form field is missing or wrong

    missing = client.post(f"/status/messages/{failed['id']}/retry", data={})
    wrong = client.post(f"/status/messages/{failed['id']}/retry", data={"csrf_token": "x"})

    assert missing.status_code == 400 and wrong.status_code == 400
    status = db.execute("SELECT status FROM message_logs WHERE id = %s", (failed["id"],))
    assert status.fetchone()["status"] == "FAILED"


def test_retry_of_a_sent_greeting_is_refused_with_a_notice(client, db):
    sent = make_message(db, make_user(db), status="SENT", scheduled=ago(hours=2))

    response = client.post(
        f"/status/messages/{sent['id']}/retry", data={"csrf_token": csrf_of(client)}
    )

    assert response.status_code == 303 and "notice=not-retryable" in response.headers["Location"]
    status = db.execute("SELECT status FROM message_logs WHERE id = %s", (sent["id"],))
    assert status.fetchone()["status"] == "SENT"


def test_a_retry_form_from_another_origin_is_refused(client, db):
    failed = make_message(db, make_user(db), status="FAILED", scheduled=ago(hours=2))
    token = csrf_of(client)

    response = client.post(
        f"/status/messages/{failed['id']}/retry",
        data={"csrf_token": token},
        headers={"Origin": "https://elsewhere.example"},
    )

    assert response.status_code == 400


def test_stuck_lists_expired_leases_only(client, db):
    expired = make_message(
        db, make_user(db), status="SENDING", scheduled=ago(minutes=30), locked_until=ago(minutes=5)
    )
    active = make_message(
        db, make_user(db), status="QUEUED", scheduled=ago(minutes=1), locked_until=ahead(minutes=9)
    )

    html = client.get("/status/stuck").get_data(as_text=True)

    assert f'data-message="{expired["id"]}"' in html
    assert f'data-message="{active["id"]}"' not in html


def test_the_page_is_not_cached_and_cannot_be_framed(client):
    response = client.get("/status")

    assert response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert client.get("/status/static/status.css").status_code == 200


@pytest.fixture
def secured(db_url):
    app = create_app({"DATABASE_URL": db_url, "API_TOKEN": TOKEN, "TESTING": True})
    yield app.test_client()
    resources_of(app).pool.close()


def test_with_a_token_set_the_page_asks_for_it(secured):
    response = secured.get("/status/failures")

    assert response.status_code == 401
    assert 'id="login"' in response.get_data(as_text=True)
    assert 'name="next" value="/status/failures"' in response.get_data(as_text=True)


def test_a_bearer_token_opens_the_page(secured):
    response = secured.get("/status", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200


def test_the_login_form_sets_an_httponly_session_cookie(secured):
    csrf = csrf_of(secured, "/status/login")

    wrong = secured.post("/status/login", data={"csrf_token": csrf, "token": "nope"})
    right = secured.post(
        "/status/login", data={"csrf_token": csrf, "token": TOKEN, "next": "/status/stuck"}
    )

    assert wrong.status_code == 401
    assert right.status_code == 303 and right.headers["Location"] == "/status/stuck"
    cookie = next(c for c in right.headers.getlist("Set-Cookie") if "session" in c)
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    assert secured.get("/status/stuck").status_code == 200


def test_a_forged_session_cookie_is_refused(secured):
    secured.set_cookie("birthday_status_session", "9999999999.deadbeef", path="/status")

    assert secured.get("/status").status_code == 401


def test_login_never_redirects_off_the_status_page(secured):
    csrf = csrf_of(secured, "/status/login")

    response = secured.post(
        "/status/login", data={"csrf_token": csrf, "token": TOKEN, "next": "https://evil.example/"}
    )

    assert response.headers["Location"] == "/status"


def test_with_a_token_set_retry_needs_it(secured, db):
    failed = make_message(db, make_user(db), status="FAILED", scheduled=ago(hours=2))
    csrf = csrf_of(secured, "/status/login")

    response = secured.post(f"/status/messages/{failed['id']}/retry", data={"csrf_token": csrf})

    assert response.status_code in {401, 403}
    status = db.execute("SELECT status FROM message_logs WHERE id = %s", (failed["id"],))
    assert status.fetchone()["status"] == "FAILED"
