"""API_TOKEN: writes need a bearer token when it is set; reads stay open."""

from __future__ import annotations

import pytest

from app import create_app

TOKEN = "s3cret-token-for-tests-only"
BODY = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": "ada@example.com",
    "timezone": "Europe/London",
    "birthday_date": "1990-12-10",
}


@pytest.fixture
def secured(db_url):
    app = create_app({"DATABASE_URL": db_url, "API_TOKEN": TOKEN})
    yield app.test_client()
    app.extensions["db_pool"].close()


def test_a_write_without_a_token_is_401_with_www_authenticate(secured):
    response = secured.post("/users", json=BODY)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.get_json()["code"] == 401
    assert response.get_json()["message"]


@pytest.mark.parametrize(
    "header", ["Bearer wrong-token", f"Basic {TOKEN}", TOKEN, "Bearer ", f"Bearer {TOKEN}x"]
)
def test_a_write_with_a_wrong_token_is_401(secured, header):
    response = secured.post("/users", json=BODY, headers={"Authorization": header})

    assert response.status_code == 401


def test_a_write_with_the_token_succeeds(secured):
    response = secured.post("/users", json=BODY, headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 201


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_every_write_method_needs_the_token(secured, method):
    created = secured.post("/users", json=BODY, headers={"Authorization": f"Bearer {TOKEN}"})
    user_url = created.headers["Location"]

    response = getattr(secured, method)(user_url, json={"first_name": "Grace"})

    assert response.status_code == 401


@pytest.mark.parametrize("path", ["/users", "/health/live", "/health/db", "/openapi.json", "/docs"])
def test_reads_health_and_docs_stay_open(secured, path):
    assert secured.get(path).status_code == 200


def test_readiness_needs_no_token(secured):
    # 200 or 503 depending on the scheduler, but never 401.
    assert secured.get("/health").status_code in {200, 503}


def test_without_a_token_configured_writes_are_open(client):
    assert client.post("/users", json=BODY).status_code == 201


def test_a_short_api_token_is_refused_at_start(db_url):
    with pytest.raises(ValueError, match="API_TOKEN"):
        create_app({"DATABASE_URL": db_url, "API_TOKEN": "short"})
