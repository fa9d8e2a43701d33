"""Bearer tokens: with any configured, users, messages and metrics need one.

The list of endpoints comes from /openapi.json, so a new endpoint is checked the day
it is added.
"""

from __future__ import annotations

import logging
import re
import uuid

import pytest

from api.resources import resources_of
from app import create_app
from tests.factories import ADA_BODY

WRITE_TOKEN = "write-token-for-tests-0001"
OTHER_WRITE_TOKEN = "write-token-for-tests-0002"
READ_TOKEN = "read-token-for-tests-00001"
METRICS_TOKEN = "metrics-token-for-tests-01"
# The provider's webhook carries its own signature instead (tests/db/api/test_provider_webhook.py).
OPEN_OPERATIONS = {("get", "/health/live"), ("get", "/health"), ("post", "/webhooks/provider")}
READ_METHODS = {"get", "head", "options"}
BODY = ADA_BODY


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def build_client(db_url: str, **settings: str):
    app = create_app({"DATABASE_URL": db_url, **settings})  # not TESTING: errors render
    resources_of(app).pool.open(wait=True, timeout=10)  # as gunicorn's hook does
    return app, app.test_client()


@pytest.fixture
def secured(db_url):
    app, client = build_client(
        db_url,
        API_TOKENS=f"{WRITE_TOKEN},{OTHER_WRITE_TOKEN}",
        API_READ_TOKENS=READ_TOKEN,
        METRICS_TOKENS=METRICS_TOKEN,
    )
    yield client
    resources_of(app).pool.close()


def _example_url(path: str, path_item: dict, operation: dict) -> str:
    """The path with each parameter filled in by a value of its declared type."""
    parameters = path_item.get("parameters", []) + operation.get("parameters", [])
    types = {p["name"]: p.get("schema", {}) for p in parameters if p["in"] == "path"}

    def value(match: re.Match) -> str:
        schema = types[match[1]]
        return "1" if schema.get("type") == "integer" else str(uuid.uuid4())

    return re.sub(r"\{(\w+)\}", value, path)


def spec_operations(client) -> list[tuple[str, str, str]]:
    """(method, spec path, a URL to call) for every operation /openapi.json declares."""
    spec = client.get("/openapi.json").get_json()
    operations = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            operations.append((method, path, _example_url(path, item, operation)))
    return operations


def call(client, method: str, url: str, headers: dict | None = None):
    body = {} if method not in READ_METHODS else None
    return client.open(url, method=method.upper(), json=body, headers=headers or {})


def protected_operations(client) -> list[tuple[str, str, str]]:
    operations = [op for op in spec_operations(client) if op[:2] not in OPEN_OPERATIONS]
    assert len(operations) >= 12  # users, messages, health/db, metrics: not an empty list
    return operations


def test_the_spec_marks_open_exactly_liveness_readiness_and_the_provider_webhook(secured):
    spec = secured.get("/openapi.json").get_json()

    open_ones = {
        (method, path)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method != "parameters" and operation.get("security") == []
    }

    assert open_ones == OPEN_OPERATIONS
    assert spec["security"] == [{"bearerAuth": []}]
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["bearerAuth"]["description"],
    }


def test_every_other_operation_in_the_spec_is_401_without_a_token(secured):
    answers = {
        f"{method.upper()} {path}": call(secured, method, url).status_code
        for method, path, url in protected_operations(secured)
    }

    assert answers == dict.fromkeys(answers, 401)


def test_every_write_in_the_spec_is_403_with_a_read_token(secured):
    answers = {
        f"{method.upper()} {path}": call(secured, method, url, bearer(READ_TOKEN)).status_code
        for method, path, url in protected_operations(secured)
        if method not in READ_METHODS
    }

    assert len(answers) >= 5
    assert answers == dict.fromkeys(answers, 403)


def test_every_read_in_the_spec_works_with_a_read_token(secured):
    answers = {
        f"{method.upper()} {path}": call(secured, method, url, bearer(READ_TOKEN)).status_code
        for method, path, url in protected_operations(secured)
        if method in READ_METHODS
    }

    assert len(answers) >= 6
    # 404 for the made-up ids, 200 for the lists: the request reached its view.
    assert all(code in {200, 404} for code in answers.values()), answers


def test_every_operation_in_the_spec_gets_past_the_check_with_a_write_token(secured):
    answers = {
        f"{method.upper()} {path}": call(secured, method, url, bearer(WRITE_TOKEN)).status_code
        for method, path, url in protected_operations(secured)
    }

    # Made-up ids and empty bodies: 404 or 422 from the view, never 401/403 or 500.
    refused = {op: code for op, code in answers.items() if code in {401, 403} or code >= 500}
    assert refused == {}


def test_the_open_operations_answer_without_a_token(secured):
    assert secured.get("/health/live").status_code == 200
    assert secured.get("/health").status_code in {200, 503}  # never 401
    assert secured.get("/openapi.json").status_code == 200
    assert secured.get("/docs").status_code == 200
    assert secured.get("/docs/assets/swagger-ui-bundle.js").status_code == 200


def test_an_unknown_route_is_closed_too(secured):
    assert secured.get("/users-export").status_code == 401
    assert secured.get("/users-export", headers=bearer(READ_TOKEN)).status_code == 404


def test_the_right_tokens_create_and_read_users(secured):
    created = secured.post("/users", json=BODY, headers=bearer(WRITE_TOKEN))
    listed = secured.get("/users", headers=bearer(READ_TOKEN))
    fetched = secured.get(created.headers["Location"], headers=bearer(OTHER_WRITE_TOKEN))

    assert created.status_code == 201
    assert [user["email"] for user in listed.get_json()] == ["ada@example.com"]
    assert fetched.get_json()["id"] == created.get_json()["id"]


def test_a_metrics_token_opens_metrics_and_nothing_else(secured):
    assert secured.get("/metrics", headers=bearer(METRICS_TOKEN)).status_code == 200
    assert secured.get("/metrics", headers=bearer(READ_TOKEN)).status_code == 200
    assert secured.get("/users", headers=bearer(METRICS_TOKEN)).status_code == 403
    assert secured.get("/health/db", headers=bearer(METRICS_TOKEN)).status_code == 403


def test_401_and_403_have_the_json_shape_of_every_error(secured):
    missing = secured.get("/users")
    forbidden = secured.post("/users", json=BODY, headers=bearer(READ_TOKEN))

    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert set(missing.get_json()) == {"code", "status", "message", "errors"}
    assert (missing.get_json()["code"], missing.get_json()["status"]) == (401, "Unauthorized")
    assert set(forbidden.get_json()) == {"code", "status", "message", "errors"}
    assert (forbidden.get_json()["code"], forbidden.get_json()["status"]) == (403, "Forbidden")


def test_401_and_403_name_the_authorization_header(secured):
    missing = secured.get("/users", headers={"Authorization": "Bearer t\u00e9l\u00e9phone"})
    forbidden = secured.post("/users", json=BODY, headers=bearer(READ_TOKEN))

    for refused in (missing, forbidden):
        assert list(refused.get_json()["errors"]) == ["headers"]
        assert list(refused.get_json()["errors"]["headers"]) == ["Authorization"]


@pytest.mark.parametrize(
    "header",
    [
        "Bearer wrong-token-wrong-token",
        f"Basic {WRITE_TOKEN}",
        WRITE_TOKEN,
        "Bearer ",
        f"Bearer {WRITE_TOKEN}x",
        f"Bearer {WRITE_TOKEN[:-1]}",
        "Bearer t\u00e9l\u00e9phone-token-0001",
    ],
)
def test_a_wrong_token_is_401(secured, header):
    response = secured.get("/users", headers={"Authorization": header})

    assert response.status_code == 401


def test_a_refusal_is_logged_with_request_id_and_address_never_the_token(secured, caplog):
    wrong = "wrong-token-that-must-not-be-logged"
    with caplog.at_level(logging.WARNING, logger="api.auth"):
        secured.get("/users", headers={**bearer(wrong), "X-Request-ID": "auth-test-1"})

    records = [r for r in caplog.records if r.name == "api.auth"]
    assert len(records) == 1
    assert records[0].request_id == "auth-test-1"
    assert records[0].client_address == "127.0.0.1"
    assert wrong not in str(vars(records[0]))
    assert "Bearer" not in str(vars(records[0]))


def test_health_shows_only_statuses_without_a_token(secured):
    anonymous = secured.get("/health").get_json()
    with_token = secured.get("/health", headers=bearer(READ_TOKEN)).get_json()

    shapes = {name: set(check) for name, check in anonymous["checks"].items()}
    assert shapes == {name: {"status"} for name in with_token["checks"]}
    assert any(set(check) - {"status"} for check in with_token["checks"].values())


def test_api_token_alone_still_reads_and_writes(db_url):
    app, client = build_client(db_url, API_TOKEN=WRITE_TOKEN)
    try:
        assert client.get("/users").status_code == 401
        assert client.post("/users", json=BODY).status_code == 401
        assert client.post("/users", json=BODY, headers=bearer(WRITE_TOKEN)).status_code == 201
        assert client.get("/users", headers=bearer(WRITE_TOKEN)).status_code == 200
    finally:
        resources_of(app).pool.close()


def test_rotation_two_tokens_both_work_and_a_removed_one_fails(db_url, monkeypatch):
    old, new = "rotation-old-token-0001", "rotation-new-token-0002"
    # Step 1: the new token added beside the old one.
    monkeypatch.setenv("API_TOKENS", f"{old},{new}")
    app, client = build_client(db_url)
    both = [client.get("/users", headers=bearer(t)).status_code for t in (old, new)]
    resources_of(app).pool.close()
    # Step 2: clients moved; the old token removed and the processes restarted.
    monkeypatch.setenv("API_TOKENS", new)
    app, client = build_client(db_url)
    after = [client.get("/users", headers=bearer(t)).status_code for t in (old, new)]
    resources_of(app).pool.close()

    assert both == [200, 200]
    assert after == [401, 200]


def test_rotation_through_a_secret_file(db_url, monkeypatch, tmp_path):
    old, new = "file-old-token-000000001", "file-new-token-000000002"
    secret = tmp_path / "api_tokens"
    secret.write_text(f"{old}\n{new}\n")
    monkeypatch.setenv("API_TOKENS_FILE", str(secret))
    app, client = build_client(db_url)
    both = [client.get("/users", headers=bearer(t)).status_code for t in (old, new)]
    resources_of(app).pool.close()
    secret.write_text(f"{new}\n")
    app, client = build_client(db_url)  # as each gunicorn worker does after a HUP
    after = [client.get("/users", headers=bearer(t)).status_code for t in (old, new)]
    resources_of(app).pool.close()

    assert both == [200, 200]
    assert after == [401, 200]


def test_without_tokens_configured_everything_is_open(client):
    assert client.post("/users", json=BODY).status_code == 201
    assert client.get("/users").status_code == 200
    assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("API_TOKEN", "short", "API_TOKEN must hold tokens of at least 16"),
        ("API_TOKENS", f"{WRITE_TOKEN},short", "API_TOKENS must hold tokens of at least 16"),
        ("API_READ_TOKENS", "short", "API_READ_TOKENS must hold tokens"),
        ("METRICS_TOKENS", "short", "METRICS_TOKENS must hold tokens"),
        ("API_TOKENS", "one token-with-space-inside", "API_TOKENS must hold tokens without"),
    ],
)
def test_a_bad_token_setting_is_refused_at_start_naming_the_variable(db_url, name, value, message):
    with pytest.raises(ValueError, match=message) as raised:
        create_app({"DATABASE_URL": db_url, name: value})

    assert value not in str(raised.value)  # the variable is named, its value never shown


def test_a_token_cannot_be_both_read_only_and_read_write(db_url):
    with pytest.raises(ValueError, match="both API_READ_TOKENS and API_TOKENS"):
        create_app(
            {"DATABASE_URL": db_url, "API_TOKENS": WRITE_TOKEN, "API_READ_TOKENS": WRITE_TOKEN}
        )


def test_an_unreadable_token_file_stops_start_up_naming_the_variable(db_url, monkeypatch, tmp_path):
    monkeypatch.setenv("API_TOKENS_FILE", str(tmp_path / "missing"))

    with pytest.raises(ValueError, match="API_TOKENS_FILE cannot be read"):
        create_app({"DATABASE_URL": db_url})


def test_a_token_list_and_its_file_together_are_refused(db_url, monkeypatch, tmp_path):
    secret = tmp_path / "api_tokens"
    secret.write_text(WRITE_TOKEN)
    monkeypatch.setenv("API_TOKENS_FILE", str(secret))
    monkeypatch.setenv("API_TOKENS", OTHER_WRITE_TOKEN)

    with pytest.raises(ValueError, match="set API_TOKENS or API_TOKENS_FILE, not both"):
        create_app({"DATABASE_URL": db_url})
