"""Who may press Retry, on /status and in the API, and credentials the page cannot read.

Retry is a write: once any token is configured it needs a read-write one, so a
read token never makes a greeting due again, whichever way it is presented.
Credentials in any characters (a header, a form field, a cookie) are a refusal,
never a 500. Apps here run with testing off, so an exception becomes the 500 a
client would see.
"""

from __future__ import annotations

import re

import psycopg
import pytest
from psycopg.rows import dict_row

from api.resources import resources_of
from app import create_app
from tests.factories import ago, make_message, make_user

WRITE_TOKEN = "status-write-token-for-tests"
READ_TOKEN = "status-read-token-for-tests-"
SESSION_COOKIE = "birthday_status_session"
CSRF_COOKIE = "birthday_status_csrf"


@pytest.fixture
def db(db_url):
    with psycopg.connect(db_url, row_factory=dict_row, autocommit=True) as conn:
        yield conn


@pytest.fixture
def make_client(db_url):
    """A client of an app with these settings (testing off: errors render as responses)."""
    apps = []

    def build(**settings: str):
        app = create_app({"DATABASE_URL": db_url, **settings})
        resources_of(app).pool.open(wait=True, timeout=10)
        apps.append(app)
        return app.test_client()

    yield build
    for app in apps:
        resources_of(app).pool.close()


def csrf_of(client) -> str:
    html = client.get("/status/login").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def status_of(db, message_id: int) -> str:
    row = db.execute("SELECT status FROM message_logs WHERE id = %s", (message_id,)).fetchone()
    return row["status"]


def failed_greeting(db) -> dict:
    return make_message(db, make_user(db), status="FAILED", scheduled=ago(hours=2))


def press_retry(client, message_id: int, headers: dict | None = None):
    return client.post(
        f"/status/messages/{message_id}/retry",
        data={"csrf_token": csrf_of(client), "next": "/status/failures"},
        headers=headers or {},
    )


def sign_in(client, token: str) -> None:
    response = client.post("/status/login", data={"csrf_token": csrf_of(client), "token": token})
    assert response.status_code == 303, response.get_data(as_text=True)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_with_only_read_tokens_a_read_bearer_token_cannot_retry_on_the_page(make_client, db):
    client = make_client(API_READ_TOKENS=READ_TOKEN)
    failed = failed_greeting(db)

    response = press_retry(client, failed["id"], bearer(READ_TOKEN))

    assert response.status_code == 403
    assert status_of(db, failed["id"]) == "FAILED"


def test_with_only_read_tokens_a_read_session_cannot_retry_on_the_page(make_client, db):
    client = make_client(API_READ_TOKENS=READ_TOKEN)
    failed = failed_greeting(db)
    sign_in(client, READ_TOKEN)
    assert client.get("/status/failures").status_code == 200  # the session reads

    response = press_retry(client, failed["id"])

    assert response.status_code == 403
    assert status_of(db, failed["id"]) == "FAILED"


def test_with_only_read_tokens_the_refusal_says_no_write_token_is_configured(make_client, db):
    client = make_client(API_READ_TOKENS=READ_TOKEN)

    response = press_retry(client, failed_greeting(db)["id"], bearer(READ_TOKEN))

    assert 'id="no-write-token"' in response.get_data(as_text=True)


def test_a_read_token_beside_a_write_token_cannot_retry_on_the_page(make_client, db):
    client = make_client(API_TOKENS=WRITE_TOKEN, API_READ_TOKENS=READ_TOKEN)
    failed = failed_greeting(db)
    sign_in(client, READ_TOKEN)

    by_session = press_retry(client, failed["id"])
    by_bearer = press_retry(client, failed["id"], bearer(READ_TOKEN))

    assert (by_session.status_code, by_bearer.status_code) == (403, 403)
    assert 'id="no-write-token"' not in by_session.get_data(as_text=True)
    assert status_of(db, failed["id"]) == "FAILED"


@pytest.mark.parametrize(
    "tokens",
    [
        {"API_READ_TOKENS": READ_TOKEN},  # only read tokens configured
        {"API_TOKENS": WRITE_TOKEN, "API_READ_TOKENS": READ_TOKEN},
    ],
    ids=["only-read-tokens", "beside-a-write-token"],
)
def test_a_read_token_cannot_retry_in_the_api(make_client, db, tokens):
    client = make_client(**tokens)
    failed = failed_greeting(db)

    response = client.post(f"/messages/{failed['id']}/retry", headers=bearer(READ_TOKEN))

    assert response.status_code == 403
    assert status_of(db, failed["id"]) == "FAILED"


def test_a_write_session_retries_on_the_page(make_client, db):
    client = make_client(API_TOKENS=WRITE_TOKEN, API_READ_TOKENS=READ_TOKEN)
    failed = failed_greeting(db)
    sign_in(client, WRITE_TOKEN)

    response = press_retry(client, failed["id"])

    assert response.status_code == 303
    assert status_of(db, failed["id"]) == "SCHEDULED"


def test_with_no_token_configured_retry_on_the_page_stays_open(make_client, db):
    client = make_client()
    failed = failed_greeting(db)

    response = press_retry(client, failed["id"])

    assert response.status_code == 303
    assert status_of(db, failed["id"]) == "SCHEDULED"


# Values a client can send that are no token, in characters compare_digest refuses as
# str, digits str.isdigit takes and int() does not, or more digits than int() reads.
BAD_BEARERS = [
    "Bearer \u00e9",
    "Bearer \u00b2",
    "Bearer " + "\u20ac" * 3,
    "Bearer \x00",
    "bearer  \u00e9 ",
]
BAD_SESSIONS = [
    "\u00b2.x",
    "\u00b2\u00b2\u00b2\u00b2.abc",
    "9" * 5000 + ".x",
    "\u0661\u0662.abc",  # Arabic-Indic digits: isdigit() is True
    "9999999999.\u00e9",
    "9999999999." + "\u00e9" * 64,
    ".",
    "",
]


@pytest.mark.parametrize("configured", [{}, {"API_TOKENS": WRITE_TOKEN}], ids=["open", "token"])
@pytest.mark.parametrize("authorization", BAD_BEARERS)
def test_a_non_ascii_bearer_header_on_the_page_is_never_a_500(
    make_client, configured, authorization
):
    client = make_client(**configured)

    response = client.get("/status", headers={"Authorization": authorization})

    assert response.status_code == (401 if configured else 200)


# The test client warns that a browser would drop the 5,000-digit cookie; a script need not.
@pytest.mark.filterwarnings("ignore:The 'birthday_status_session' cookie is too large")
@pytest.mark.parametrize("configured", [{}, {"API_TOKENS": WRITE_TOKEN}], ids=["open", "token"])
@pytest.mark.parametrize("session", BAD_SESSIONS)
def test_an_unreadable_session_cookie_is_never_a_500(make_client, configured, session):
    client = make_client(**configured)
    client.set_cookie(SESSION_COOKIE, session, path="/status")

    response = client.get("/status/stuck")

    assert response.status_code == (401 if configured else 200)


@pytest.mark.parametrize("configured", [{}, {"API_TOKENS": WRITE_TOKEN}], ids=["open", "token"])
@pytest.mark.parametrize("given", ["\u00e9", "\u00b2", "\x00", "\u20ac" * 100])
def test_a_non_ascii_csrf_value_is_the_expired_form_page_never_a_500(
    make_client, configured, given
):
    client = make_client(**configured)
    csrf_of(client)  # sets the CSRF cookie

    response = client.post("/status/login", data={"csrf_token": given, "token": WRITE_TOKEN})

    assert response.status_code == 400
    assert "The form has expired" in response.get_data(as_text=True)


@pytest.mark.parametrize("given", ["\u00e9", "\u00b2", "\x00", "\u20ac" * 100])
def test_a_non_ascii_csrf_cookie_is_the_expired_form_page_never_a_500(make_client, given):
    client = make_client(API_TOKENS=WRITE_TOKEN)
    client.set_cookie(CSRF_COOKIE, given, path="/status")

    response = client.post("/status/login", data={"csrf_token": "abc", "token": WRITE_TOKEN})

    assert response.status_code == 400


@pytest.mark.parametrize("configured", [{}, {"API_TOKENS": WRITE_TOKEN}], ids=["open", "token"])
@pytest.mark.parametrize("token", ["\u00e9", "\u00b2" * 20, f"{WRITE_TOKEN}\u00e9", "\x00"])
def test_a_non_ascii_token_typed_into_the_form_is_refused_never_a_500(
    make_client, configured, token
):
    client = make_client(**configured)

    response = client.post("/status/login", data={"csrf_token": csrf_of(client), "token": token})

    assert response.status_code == 401
    assert 'id="login-error"' in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "target", ["http://[::1", "//[", "/status?next=http://[", "/status\r\nX: y", "\u00e9"]
)
def test_an_unparsable_next_target_goes_to_the_overview_never_a_500(make_client, target):
    client = make_client(API_TOKENS=WRITE_TOKEN)

    shown = client.get("/status/login", query_string={"next": target})
    signed_in = client.post(
        "/status/login", data={"csrf_token": csrf_of(client), "token": WRITE_TOKEN, "next": target}
    )

    assert shown.status_code == 200
    assert signed_in.status_code == 303
    assert "\n" not in signed_in.headers["Location"]
    assert signed_in.headers["Location"].startswith("/status")


def test_the_right_token_still_signs_in_and_its_session_still_opens_the_page(make_client):
    client = make_client(API_TOKENS=WRITE_TOKEN)

    sign_in(client, WRITE_TOKEN)

    assert client.get("/status/stuck").status_code == 200
