"""Paging of the list endpoints: cursors (Link rel="next", X-Next-Cursor, `after`),
numbered pages beside them, and totals that are exact up to a bound."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from api import paging
from repositories import users as users_repository

NEXT_LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')


def create_user(client, **fields) -> dict:
    payload = {
        "first_name": "Grace",
        "last_name": "Hopper",
        "email": f"paging-{uuid.uuid4().hex[:10]}@example.com",
        "timezone": "Europe/London",
        "birthday_date": "1990-12-10",
        "anniversary_date": "2015-06-20",
        **fields,
    }
    response = client.post("/users", json=payload)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def walk(client, first_url: str, limit: int = 50) -> tuple[list[dict], list]:
    """Every row met by following Link rel="next" from `first_url`, and each answer."""
    rows, answers, url = [], [], first_url
    for _ in range(limit):
        response = client.get(url)
        assert response.status_code == 200, response.get_json()
        rows.extend(response.get_json())
        answers.append(response)
        link = response.headers.get("Link")
        if link is None:
            return rows, answers
        url = NEXT_LINK.match(link).group("url")
    raise AssertionError(f"more than {limit} pages from {first_url}")


def test_following_next_links_walks_every_user_once_in_creation_order(client):
    created = [create_user(client)["id"] for _ in range(7)]

    rows, answers = walk(client, "/users?page_size=3")

    assert [row["id"] for row in rows] == created
    assert [len(answer.get_json()) for answer in answers] == [3, 3, 1]
    assert "X-Pagination" in answers[0].headers
    assert all("X-Pagination" not in answer.headers for answer in answers[1:])
    assert "X-Next-Cursor" not in answers[-1].headers


def test_a_cursor_page_starts_after_the_cursor_even_when_users_are_added(client):
    first, second = create_user(client), create_user(client)
    page = client.get("/users?page_size=1")
    cursor = page.headers["X-Next-Cursor"]
    third = create_user(client)

    after = client.get(f"/users?page_size=10&after={cursor}")

    assert [row["id"] for row in page.get_json()] == [first["id"]]
    assert [row["id"] for row in after.get_json()] == [second["id"], third["id"]]


def test_the_next_link_keeps_the_filters(client):
    for _ in range(3):
        create_user(client, timezone="Asia/Kathmandu")
    create_user(client, timezone="Europe/Paris")

    rows, _ = walk(client, "/users?page_size=2&timezone=Asia%2FKathmandu")

    assert len(rows) == 3
    assert {row["timezone"] for row in rows} == {"Asia/Kathmandu"}


@pytest.mark.parametrize("window", [2, 5_000])
def test_a_search_finds_the_same_users_whether_matches_are_near_or_far(client, monkeypatch, window):
    # With a window of 2 the matches lie beyond the first users walked in order,
    # so the search must fall back to the trigram index and still keep the order.
    monkeypatch.setattr(users_repository, "SEARCH_WINDOW", window)
    for _ in range(4):
        create_user(client, last_name="Hopper")
    wanted = [create_user(client, last_name="Lovelace")["id"] for _ in range(3)]

    rows, answers = walk(client, "/users?page_size=2&q=lovel")

    assert [row["id"] for row in rows] == wanted
    assert len(answers) == 2


def test_numbered_pages_still_work_beside_cursors(client):
    created = [create_user(client)["id"] for _ in range(5)]

    second = client.get("/users?page_size=2&page=2")

    assert [row["id"] for row in second.get_json()] == created[2:4]
    assert json.loads(second.headers["X-Pagination"])["total"] == 5
    assert "X-Total-Is-Estimate" not in second.headers
    cursor_page = client.get(NEXT_LINK.match(second.headers["Link"]).group("url"))
    assert [row["id"] for row in cursor_page.get_json()] == created[4:]


def test_the_last_page_knows_its_exact_total_without_counting(client, monkeypatch):
    monkeypatch.setattr(paging, "EXACT_COUNT_UP_TO", 2)  # a count would be an estimate
    for _ in range(4):
        create_user(client)

    last = client.get("/users?page_size=3&page=2")

    assert len(last.get_json()) == 1
    assert json.loads(last.headers["X-Pagination"])["total"] == 4
    assert "X-Total-Is-Estimate" not in last.headers


def test_a_total_above_the_exact_bound_says_it_is_an_estimate(client, monkeypatch):
    monkeypatch.setattr(paging, "EXACT_COUNT_UP_TO", 2)
    for _ in range(4):
        create_user(client)

    response = client.get("/users?page_size=1")

    assert response.headers["X-Total-Is-Estimate"] == "true"
    assert json.loads(response.headers["X-Pagination"])["total"] >= 3


@pytest.mark.parametrize(
    "cursor",
    ["not-a-cursor", "W10", "WyIyMDI0LTAzLTAxIiwgIjEiXQ", "WyJ4IiwgInkiXQ"],
    ids=["not base64 json", "empty list", "a message cursor", "wrong values"],
)
def test_a_bad_cursor_is_a_400_naming_after(client, cursor):
    response = client.get(f"/users?after={cursor}")

    assert response.status_code == 400
    assert response.get_json()["status"] == "Bad Request"
    assert "after" in response.get_json()["errors"]["query"]


def test_a_cursor_and_a_page_number_together_are_a_400_naming_after(client):
    create_user(client)
    create_user(client)
    cursor = client.get("/users?page_size=1").headers["X-Next-Cursor"]

    response = client.get(f"/users?after={cursor}&page=2")

    assert response.status_code == 400
    assert "after" in response.get_json()["errors"]["query"]


def test_following_next_links_walks_every_message_once_newest_first(client):
    for _ in range(3):
        create_user(client)
    everything = client.get("/messages?page_size=100").get_json()

    rows, answers = walk(client, "/messages?page_size=2")

    assert [row["id"] for row in rows] == [row["id"] for row in everything]
    assert len(rows) == 6
    keys = [(row["occasion_date"], row["id"]) for row in rows]
    assert keys == sorted(keys, reverse=True)
    assert len(answers) == 3


def test_a_users_messages_walk_by_cursor(client):
    user = create_user(client)
    create_user(client)

    rows, answers = walk(client, f"/users/{user['id']}/messages?page_size=1")

    assert len(rows) == 2
    assert {row["user_id"] for row in rows} == {user["id"]}
    assert len(answers) == 2


def test_a_message_cursor_with_the_wrong_shape_is_a_400_naming_after(client):
    response = client.get("/messages?after=WyJ4IiwgInkiXQ")

    assert response.status_code == 400
    assert "after" in response.get_json()["errors"]["query"]


def test_the_docs_describe_after_and_the_next_link(client):
    spec = client.get("/openapi.json").get_json()
    listing = spec["paths"]["/users"]["get"]

    assert "after" in {parameter["name"] for parameter in listing["parameters"]}
    headers = listing["responses"]["200"]["headers"]
    assert {"Link", "X-Next-Cursor", "X-Total-Is-Estimate"} <= set(headers)
