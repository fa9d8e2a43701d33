"""Hostile input: malformed, oversized, non-ASCII and wrongly-typed values in every
query parameter of every list endpoint and in every header and cookie the service
reads. None may reach a 5xx. The JSON API answers a 4xx that names the parameter,
or a 2xx where the value is acceptable (a search for non-ASCII text). The /status
pages are HTML and must answer 2xx or 4xx.

The endpoints come from the app's URL map and their query parameters from
/openapi.json (the /status pages' from the names api/status.py reads), so a new
endpoint or parameter is swept the day it is added. Every sweep runs once with no
token configured and once with tokens. The apps run with testing off, so an
exception becomes the 500 a client would get instead of failing the test early.
"""

from __future__ import annotations

import base64
import inspect
import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from flask import Flask
from psycopg.rows import dict_row

import api
from api import auth
from api import status as status_page
from api.resources import resources_of
from app import create_app
from tests.factories import ADA_BODY, ago, make_message, make_user

WRITE_TOKEN = "hostile-write-token-000001"
READ_TOKEN = "hostile-read-token-0000001"
METRICS_TOKEN = "hostile-metrics-token-0001"
CONFIGURATIONS = {
    "no token": {},
    "tokens": {
        "API_TOKENS": WRITE_TOKEN,
        "API_READ_TOKENS": READ_TOKEN,
        "METRICS_TOKENS": METRICS_TOKEN,
    },
}
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
USER_ID = "00000000-0000-4000-8000-000000000000"


def b64(raw: bytes | str) -> str:
    """A cursor-looking value: URL-safe base64 without padding, as the API makes them."""
    data = raw.encode() if isinstance(raw, str) else raw
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


# Forged cursors: the shapes the issue names, and their neighbours.
FORGED_CURSORS = {
    "overflowing number": b64('["2024-01-01", 1e400]'),
    "number where the id belongs": b64(json.dumps(["2024-01-01T00:00:00+00:00", 5])),
    "deeply nested": b64("[" * 5000 + "]" * 5000),
    "nested in bounds": b64("[" * 40 + "]" * 40),
    "object": b64('{"a": 1}'),
    "bare number": b64("1e400"),
    "huge integer": b64("[" + "9" * 5000 + "]"),
    "null parts": b64("[null, null]"),
    "bool parts": b64("[true, false]"),
    "list parts": b64('[["2024-01-01"], [1]]'),
    "not utf-8": b64(b"\xff\xfe\xfd"),
    "padded": b64('["2024-01-01", "1"]') + "==",  # the API never pads its cursors
    "message key past bigint": b64('["2024-01-01", "9223372036854775808"]'),
    "message key with unicode digits": b64('["2024-01-01", "\\u0661\\u0662"]'),
    "message key with underscores": b64('["2024-01-01", "1_000"]'),
    "message key, least bigint": b64('["0001-01-01", "-9223372036854775808"]'),
    "message key, last date": b64('["9999-12-31", "9223372036854775807"]'),
    "user key, earliest instant": b64(json.dumps(["0001-01-01T00:00:00+14:00", USER_ID])),
    "user key, latest instant": b64(json.dumps(["9999-12-31T23:59:59-14:00", USER_ID])),
    "user key, braced uuid": b64(json.dumps(["2024-01-01T00:00:00+00:00", f"{{{USER_ID}}}"])),
    "user key, naive time": b64(json.dumps(["2024-01-01T00:00:00", USER_ID])),
    "long part": b64(json.dumps(["2024-01-01", "1" * 500])),
    "oversized": b64(json.dumps(["x" * 3000, "y"])),
}
HOSTILE_VALUES = {
    "empty": "",
    "blank": "   ",
    "latin": "\u00e9t\u00e9",
    "superscript two": "\u00b2",
    "arabic-indic digits": "\u0661\u0662",
    "right-to-left override": "\u202e",
    "emoji": "\U0001f382",
    "NUL": "\x00",
    "newline": "a\r\nb",
    "oversized text": "\u20ac" * 2000,
    "oversized number": "9" * 5000,
    "huge number": "9" * 30,
    "negative": "-1",
    "zero": "0",
    "fraction": "1.5",
    "overflowing float": "1e400",
    "NaN": "NaN",
    "boolean": "true",
    "null": "null",
    "JSON list": "[1, 2]",
    "JSON object": '{"a": 1}',
    "SQL": "' OR 1=1 --",
    "LIKE wildcard": "%_%",
    "path": "../../etc/passwd",
    "first date": "0001-01-01",
    "last date": "9999-12-31",
    "impossible date": "2024-02-30",
    "five-digit year": "99999-01-01",
    "timestamp": "2024-01-01T00:00:00+14:00",
    **{f"cursor: {name}": cursor for name, cursor in FORGED_CURSORS.items()},
}
HOSTILE_HEADER_VALUES = {
    "empty": "",
    "latin": "\u00e9",
    "superscript two": "\u00b2",
    "euro": "\u20ac",
    "NUL": "\x00",
    "tab": "a\tb",
    "oversized": "x" * 10_000,
    "bearer alone": "Bearer",
    "bearer latin": "Bearer \u00e9",
    "bearer superscript": "Bearer \u00b2\u00b2",
    "bearer NUL": "Bearer \x00",
    "bearer oversized": "Bearer " + "x" * 10_000,
    "bearer of a token plus latin": f"Bearer {WRITE_TOKEN}\u00e9",
    "basic": "Basic Zm9vOmJhcg==",
}
# Everything a request may carry that the service reads (beside the query string and
# the JSON body). test_the_sweep_knows_every_header_and_cookie_the_api_reads keeps the
# lists in step with the code.
SWEPT_HEADERS = {
    "Authorization",
    "X-Request-ID",
    "Idempotency-Key",
    "Content-Type",
    "Origin",
    "Transfer-Encoding",
    "Webhook-Timestamp",
    "Webhook-Signature",
}
SWEPT_COOKIES = {auth.SESSION_COOKIE, status_page.CSRF_COOKIE}


def header_values(*tables: dict[str, str]) -> dict[str, str]:
    """The values of these tables a header can carry: no HTTP request holds a CR or LF
    in a header value (the test client refuses them before sending)."""
    merged = {label: value for table in tables for label, value in table.items()}
    return {label: value for label, value in merged.items() if not {"\r", "\n"} & set(value)}


@dataclass
class Target:
    """An app to sweep, its client, the headers that get past the token check, and ids
    of rows it holds (a live user, a FAILED greeting)."""

    app: Flask
    client: object
    access: dict[str, str]
    user_id: str
    message_id: int


@contextmanager
def serving(db_url: str, configuration: str) -> Iterator[Target]:
    """An app in this configuration (testing off) over a user and two greetings."""
    app = create_app({"DATABASE_URL": db_url, **CONFIGURATIONS[configuration]})
    resources_of(app).pool.open(wait=True, timeout=10)
    try:
        with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
            user = make_user(conn, anniversary=None)
            make_message(conn, user, status="SCHEDULED")
            failed = make_message(
                conn,
                make_user(conn),
                status="FAILED",
                scheduled=ago(hours=3),
                error_message="refused",
            )
        access = {"Authorization": f"Bearer {WRITE_TOKEN}"} if CONFIGURATIONS[configuration] else {}
        yield Target(app, app.test_client(), access, str(user["id"]), failed["id"])
    finally:
        resources_of(app).pool.close()


@pytest.fixture(params=list(CONFIGURATIONS), ids=list(CONFIGURATIONS))
def target(request, db_url) -> Iterator[Target]:
    with serving(db_url, request.param) as served:
        yield served


@pytest.fixture
def open_target(db_url) -> Iterator[Target]:
    with serving(db_url, "no token") as served:
        yield served


@pytest.fixture
def secured_target(db_url) -> Iterator[Target]:
    with serving(db_url, "tokens") as served:
        yield served


# -- what to sweep, found from the app ------------------------------------------------

_RULE_ARGUMENT = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")


def spec_path(rule: str) -> str:
    """The OpenAPI path of a Flask rule: `/users/<uuid:user_id>` -> `/users/{user_id}`."""
    return _RULE_ARGUMENT.sub(lambda match: "{" + match["name"] + "}", rule)


def url_of(rule: str, target: Target) -> str:
    """The rule with each argument filled by a real row's id (or a file that exists)."""

    def value(match: re.Match) -> str:
        converter = match["converter"]
        if converter == "uuid":
            return target.user_id
        if converter == "int":
            return str(target.message_id)
        return "status.css" if is_status_page(rule) else "swagger-ui.css"

    return _RULE_ARGUMENT.sub(value, rule)


def get_rules(app: Flask) -> list[str]:
    """Every rule that answers GET, from the URL map."""
    return sorted({rule.rule for rule in app.url_map.iter_rules() if "GET" in rule.methods})


def query_parameters(client, rule: str) -> list[str]:
    """The query parameters /openapi.json declares for GET on this rule."""
    spec = client.get("/openapi.json").get_json()
    operation = spec["paths"].get(spec_path(rule), {}).get("get", {})
    return [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]


def status_page_fields(source_kind: str) -> list[str]:
    """The names api/status.py reads from the query string (`args`) or the form."""
    kinds = {"args": "args|values", "form": "form|values"}[source_kind]
    pattern = re.compile(rf'request\.(?:{kinds})\.get\(\s*"(\w+)"')
    return sorted(set(pattern.findall(inspect.getsource(status_page))))


def is_status_page(rule: str) -> bool:
    return rule.startswith(status_page.blp.url_prefix)


def names(response, parameter: str) -> bool:
    """Whether a JSON error body names `parameter` in one of its locations."""
    body = response.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("errors"), dict):
        return False
    return any(
        isinstance(fields, dict) and parameter in fields for fields in body["errors"].values()
    )


def plain_answers(target: Target, rules: list[str]) -> dict[str, int]:
    """Each rule's status code without hostile input. Readiness may well be 503 here
    (no scheduler runs): a hostile value may not change a 5xx, nor cause one."""
    return {
        rule: target.client.get(url_of(rule, target), headers=target.access).status_code
        for rule in rules
    }


def verdict(response, parameter: str, html: bool, plain: int | None = None) -> str | None:
    """What is wrong with this answer to a hostile `parameter`, or None when it is right:
    a 5xx, or (JSON only) a 4xx that does not name it. An answer the request gets without
    the hostile value (readiness's 503, a 404 for a file) is not the value's doing."""
    code = response.status_code
    if code == plain:
        return None
    if code >= 500:
        return f"{code}"
    if html or code < 400:
        return None
    if response.mimetype != "application/json":
        return f"{code} as {response.mimetype}"
    if not names(response, parameter):
        return f"{code} not naming {parameter}: {response.get_data(as_text=True)[:200]}"
    return None


# -- the sweeps ----------------------------------------------------------------------


def test_there_are_list_endpoints_to_sweep(target):
    lists = [
        rule for rule in get_rules(target.app) if "after" in query_parameters(target.client, rule)
    ]

    assert set(lists) >= {"/users", "/messages", "/users/<uuid:user_id>/messages"}


@pytest.mark.timeout(300)
def test_every_query_parameter_of_every_endpoint_survives_hostile_values(target):
    problems, asked = {}, 0
    rules = get_rules(target.app)
    plain = plain_answers(target, rules)
    for rule in rules:
        html = is_status_page(rule)
        parameters = status_page_fields("args") if html else query_parameters(target.client, rule)
        for parameter in parameters:
            for label, value in HOSTILE_VALUES.items():
                response = target.client.get(
                    url_of(rule, target), query_string={parameter: value}, headers=target.access
                )
                asked += 1
                wrong = verdict(response, parameter, html, plain[rule])
                if wrong:
                    problems[f"GET {rule}?{parameter}=<{label}>"] = wrong

    assert problems == {}
    assert asked > 1_000  # the spec and the page gave parameters to sweep


@pytest.mark.timeout(300)
def test_every_get_endpoint_survives_hostile_authorization_headers(target):
    problems = {}
    rules = get_rules(target.app)
    plain = plain_answers(target, rules)
    for rule in rules:
        for label, value in HOSTILE_HEADER_VALUES.items():
            response = target.client.get(url_of(rule, target), headers={"Authorization": value})
            wrong = verdict(response, "Authorization", is_status_page(rule), plain[rule])
            if wrong:
                problems[f"GET {rule} Authorization: <{label}>"] = wrong

    assert problems == {}


def test_without_a_token_configured_a_hostile_authorization_header_is_ignored(open_target):
    answers = {
        label: open_target.client.get("/users", headers={"Authorization": value}).status_code
        for label, value in HOSTILE_HEADER_VALUES.items()
    }

    assert answers == dict.fromkeys(answers, 200)


def test_with_tokens_a_hostile_authorization_header_is_a_401_naming_it(secured_target):
    answers = {
        label: secured_target.client.get("/messages", headers={"Authorization": value})
        for label, value in HOSTILE_HEADER_VALUES.items()
    }

    assert {label: answer.status_code for label, answer in answers.items()} == dict.fromkeys(
        answers, 401
    )
    assert all(names(answer, "Authorization") for answer in answers.values())


@pytest.mark.timeout(300)
def test_every_get_endpoint_answers_a_hostile_request_id_with_an_id_of_its_own(target):
    problems = {}
    rules = get_rules(target.app)
    plain = plain_answers(target, rules)
    for rule in rules:
        for label, value in HOSTILE_HEADER_VALUES.items():
            response = target.client.get(
                url_of(rule, target), headers={**target.access, "X-Request-ID": value}
            )
            echoed = response.headers.get("X-Request-ID", "")
            caused_5xx = response.status_code >= 500 and response.status_code != plain[rule]
            if caused_5xx or not REQUEST_ID.match(echoed):
                problems[f"GET {rule} X-Request-ID: <{label}>"] = (response.status_code, echoed)

    assert problems == {}


def _new_user_body() -> dict:
    return {**ADA_BODY, "email": f"hostile-{uuid.uuid4().hex[:12]}@example.com"}


def test_hostile_idempotency_keys_are_a_created_user_or_a_422_naming_the_header(target):
    problems = {}
    for label, value in header_values(HOSTILE_HEADER_VALUES, HOSTILE_VALUES).items():
        response = target.client.post(
            "/users", json=_new_user_body(), headers={**target.access, "Idempotency-Key": value}
        )
        wrong = verdict(response, "Idempotency-Key", html=False)
        if wrong or response.status_code not in {201, 422}:
            problems[f"Idempotency-Key: <{label}>"] = wrong or response.status_code

    assert problems == {}


@pytest.mark.parametrize(
    "key", ["a\x00b", "\x00", "tab\tinside", "caf\u00e9", "\u202e", "x" * 256, ""]
)
def test_an_idempotency_key_outside_printable_ascii_is_a_422_naming_the_header(target, key):
    response = target.client.post(
        "/users", json=_new_user_body(), headers={**target.access, "Idempotency-Key": key}
    )

    assert response.status_code == 422
    assert response.get_json()["errors"]["headers"]["Idempotency-Key"]


def test_an_idempotency_key_of_printable_ascii_is_accepted_and_replays(target):
    body, key = _new_user_body(), "order 42: ~!@#$%^&*()_+{}|[]\\;',./<>?`\""

    first = target.client.post(
        "/users", json=body, headers={**target.access, "Idempotency-Key": key}
    )
    again = target.client.post(
        "/users", json=body, headers={**target.access, "Idempotency-Key": key}
    )

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"


CONTENT_TYPES = {
    "text": "text/plain",
    "latin charset": "application/json; charset=\u00e9",
    "unknown charset": "application/json; charset=x-nothing",
    "latin type": "\u00e9",
    "NUL": "application/json\x00",
    "oversized": "application/" + "x" * 10_000,
    "form": "application/x-www-form-urlencoded",
}


def test_hostile_content_types_are_a_created_user_or_a_4xx_naming_the_header(target):
    problems = {}
    for label, value in CONTENT_TYPES.items():
        response = target.client.post(
            "/users",
            data=json.dumps(_new_user_body()),
            headers={**target.access, "Content-Type": value},
        )
        wrong = verdict(response, "Content-Type", html=False)
        if response.status_code == 400 and names(response, "json"):
            wrong = None  # a body that is not JSON in that charset: 400 "Invalid JSON body"
        if wrong:
            problems[f"Content-Type: <{label}>"] = wrong

    assert problems == {}


@pytest.mark.parametrize("encoding", ["chunked, \u00e9", "\u00e9", "gzip", "x" * 1_000])
def test_a_hostile_transfer_encoding_is_never_a_5xx(target, encoding):
    response = target.client.post(
        "/users",
        json=_new_user_body(),
        headers={**target.access, "Transfer-Encoding": encoding},
    )

    assert response.status_code < 500


# -- the /status pages: cookies and forms ----------------------------------------------


def _csrf(client) -> str:
    html = client.get("/status/login").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


# The test client warns that a browser would drop an oversized cookie; a script need not.
@pytest.mark.filterwarnings("ignore:The 'birthday_status_.*' cookie is too large")
@pytest.mark.timeout(300)
def test_every_status_page_survives_hostile_cookies(target):
    pages = [rule for rule in get_rules(target.app) if is_status_page(rule)]
    problems = {}
    for cookie in sorted(SWEPT_COOKIES):
        for label, value in {**HOSTILE_HEADER_VALUES, **HOSTILE_VALUES}.items():
            client = target.app.test_client()
            client.set_cookie(cookie, value, path="/status")
            for rule in pages:
                response = client.get(url_of(rule, target))
                if response.status_code >= 500:
                    problems[f"GET {rule} {cookie}=<{label}>"] = response.status_code

    assert len(pages) >= 5
    assert problems == {}


def _status_forms(target: Target) -> dict[str, list[str]]:
    """Each POST of the /status pages (from the URL map) and the form fields it may read."""
    posts = [
        rule.rule
        for rule in target.app.url_map.iter_rules()
        if "POST" in rule.methods and is_status_page(rule.rule)
    ]
    return {url_of(rule, target): status_page_fields("form") for rule in sorted(posts)}


@pytest.mark.timeout(300)
def test_every_status_form_survives_hostile_fields_origins_and_credentials(target):
    forms = _status_forms(target)
    problems = {}
    carried = header_values(HOSTILE_HEADER_VALUES, HOSTILE_VALUES)
    for url, fields in forms.items():
        for label, value in {**HOSTILE_HEADER_VALUES, **HOSTILE_VALUES}.items():
            client = target.app.test_client()
            csrf = _csrf(client)
            valid = {"csrf_token": csrf, "token": WRITE_TOKEN, "next": "/status/failures"}
            asked = {f"field {name}": ({**valid, name: value}, {}) for name in fields}
            if label in carried:
                asked["Origin"] = (valid, {"Origin": value})
                asked["Authorization"] = (valid, {"Authorization": value})
            for what, (form, headers) in asked.items():
                response = client.post(url, data=form, headers=headers)
                if response.status_code >= 500:
                    problems[f"POST {url} {what}=<{label}>"] = response.status_code

    assert {"/status/login", "/status/logout"} <= set(forms)
    assert problems == {}


# -- the sweep's own coverage ----------------------------------------------------------

_READS = re.compile(
    r"request\.(?P<kind>headers|cookies)(?:\.get\(\s*|\[\s*)(?P<name>\"[^\"]+\"|[A-Za-z_][\w.]*)"
)


def _names_read_by_the_api() -> dict[str, set[str]]:
    """Header and cookie names every module of api/ reads, constants resolved."""
    found: dict[str, set[str]] = {"headers": set(), "cookies": set()}
    for path in sorted(Path(api.__file__).parent.glob("*.py")):
        module = __import__(f"api.{path.stem}", fromlist=["_"])
        for match in _READS.finditer(path.read_text()):
            name = match["name"]
            if name.startswith('"'):
                found[match["kind"]].add(name.strip('"'))
            else:
                found[match["kind"]].add(getattr(module, name))
    return found


def test_the_sweep_knows_every_header_and_cookie_the_api_reads():
    read = _names_read_by_the_api()

    assert read["headers"] >= {"Authorization", "Idempotency-Key", "X-Request-ID"}
    assert {name.lower() for name in read["headers"]} <= {name.lower() for name in SWEPT_HEADERS}
    assert read["cookies"] <= SWEPT_COOKIES


# -- the forged cursors the issue names, one by one ------------------------------------


def _is_a_400_naming_after(response) -> bool:
    body = response.get_json()
    return (
        response.status_code == 400
        and body["code"] == 400
        and body["status"] == "Bad Request"
        and list(body["errors"]) == ["query"]
        and list(body["errors"]["query"]) == ["after"]
    )


def test_a_message_cursor_holding_an_overflowing_number_is_a_400_naming_after(target):
    response = target.client.get(
        f"/messages?after={FORGED_CURSORS['overflowing number']}", headers=target.access
    )

    assert _is_a_400_naming_after(response), response.get_data(as_text=True)


def test_a_users_cursor_with_a_number_for_the_id_is_a_400_naming_after(target):
    response = target.client.get(
        f"/users?after={FORGED_CURSORS['number where the id belongs']}", headers=target.access
    )

    assert _is_a_400_naming_after(response), response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/users", "/messages", "/users/{user}/messages"])
def test_a_deeply_nested_cursor_is_a_400_naming_after(target, path):
    url = path.format(user=target.user_id)

    response = target.client.get(
        f"{url}?after={FORGED_CURSORS['deeply nested']}", headers=target.access
    )

    assert _is_a_400_naming_after(response), response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/users", "/messages", "/users/{user}/messages"])
def test_every_forged_cursor_is_a_400_naming_after_on_every_list(target, path):
    url = path.format(user=target.user_id)
    # In range and of the right shape for one list: a cursor that list accepts.
    accepted = {
        "/users": {"user key, earliest instant", "user key, latest instant"},
        "/messages": {"message key, least bigint", "message key, last date"},
    }
    accepted["/users/{user}/messages"] = accepted["/messages"]

    answers = {
        name: target.client.get(f"{url}?after={cursor}", headers=target.access)
        for name, cursor in FORGED_CURSORS.items()
        if name not in accepted[path]
    }

    refused = {name for name, answer in answers.items() if _is_a_400_naming_after(answer)}
    assert refused == set(answers)


@pytest.mark.parametrize(
    ("path", "cursors"),
    [
        ("/users", ["user key, earliest instant", "user key, latest instant"]),
        ("/messages", ["message key, least bigint", "message key, last date"]),
    ],
)
def test_a_well_formed_cursor_at_the_edge_of_its_range_is_a_page(target, path, cursors):
    answers = [
        target.client.get(f"{path}?after={FORGED_CURSORS[name]}", headers=target.access)
        for name in cursors
    ]

    assert [answer.status_code for answer in answers] == [200] * len(cursors)
    assert all(isinstance(answer.get_json(), list) for answer in answers)
