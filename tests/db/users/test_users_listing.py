"""The /users API, listing: GET /users pages, search and filters, through the Flask test
client on the real PostgreSQL."""

from __future__ import annotations

from tests.factories import assert_field_error, create_user, delete_user, pagination

# --- GET /users ----------------------------------------------------------------------------


def test_listing_users_returns_them_with_a_pagination_header(client):
    created = [create_user(client) for _ in range(3)]

    response = client.get("/users")

    assert response.status_code == 200
    assert response.get_json() == created
    assert pagination(response) == {
        "total": 3,
        "total_pages": 1,
        "first_page": 1,
        "last_page": 1,
        "page": 1,
    }


def test_listing_no_users_returns_an_empty_list_and_a_zero_total(client):
    response = client.get("/users")

    assert response.status_code == 200
    assert response.get_json() == []
    assert pagination(response)["total"] == 0


def test_the_first_page_has_a_next_page_but_no_previous_page(client):
    for _ in range(5):
        create_user(client)

    response = client.get("/users?page=1&page_size=2")

    assert response.status_code == 200
    assert len(response.get_json()) == 2
    assert pagination(response) == {
        "total": 5,
        "total_pages": 3,
        "first_page": 1,
        "last_page": 3,
        "page": 1,
        "next_page": 2,
    }


def test_a_middle_page_has_a_previous_and_a_next_page(client):
    for _ in range(5):
        create_user(client)

    response = client.get("/users?page=2&page_size=2")

    assert response.status_code == 200
    assert len(response.get_json()) == 2
    header = pagination(response)
    assert header["page"] == 2
    assert header["previous_page"] == 1
    assert header["next_page"] == 3


def test_the_last_page_has_a_previous_page_but_no_next_page(client):
    for _ in range(5):
        create_user(client)

    response = client.get("/users?page=3&page_size=2")

    assert response.status_code == 200
    assert len(response.get_json()) == 1
    header = pagination(response)
    assert header["page"] == 3
    assert header["previous_page"] == 2
    assert "next_page" not in header


def test_pages_list_users_in_creation_order_with_none_repeated_or_missed(client):
    created_ids = [create_user(client)["id"] for _ in range(7)]

    seen = []
    for page in (1, 2, 3):
        response = client.get(f"/users?page={page}&page_size=3")
        assert response.status_code == 200
        seen.extend(user["id"] for user in response.get_json())

    assert seen == created_ids


def test_numbered_pages_of_a_filtered_list_are_its_rows_in_order_each_whole(client):
    in_tokyo = [create_user(client, timezone="Asia/Tokyo") for _ in range(5)]
    for _ in range(3):
        create_user(client, timezone="Europe/Paris")
    deleted = create_user(client, timezone="Asia/Tokyo")
    delete_user(client, deleted["id"])

    pages = [client.get(f"/users?timezone=Asia/Tokyo&page_size=2&page={n}") for n in (1, 2, 3)]

    assert [response.status_code for response in pages] == [200, 200, 200]
    assert [user for response in pages for user in response.get_json()] == in_tokyo


def test_a_page_after_the_last_is_an_empty_list(client):
    create_user(client)

    response = client.get("/users?page=5")

    assert response.status_code == 200
    assert response.get_json() == []
    assert pagination(response)["total"] == 1
    assert "page" not in pagination(response)


def test_a_huge_page_number_is_not_a_server_error(app, client):
    app.config["PROPAGATE_EXCEPTIONS"] = False
    create_user(client)

    response = client.get("/users?page=99999999999999999999")

    assert response.status_code in {400, 422}
    assert "page" in response.get_json()["errors"]["query"]


def test_a_numbered_page_past_row_10000_is_400_naming_page_and_pointing_to_after(client):
    response = client.get("/users?page=101&page_size=100")

    assert response.status_code == 400
    [message] = response.get_json()["errors"]["query"]["page"]
    assert "after=" in message


def test_the_deepest_numbered_page_is_served(client):
    create_user(client)

    assert client.get("/users?page=100&page_size=100").status_code == 200
    assert client.get("/users?page=1000&page_size=10").status_code == 200
    assert client.get("/users?page=1001&page_size=10").status_code == 400


def test_a_page_size_of_100_is_accepted(client):
    create_user(client)

    response = client.get("/users?page_size=100")

    assert response.status_code == 200
    assert len(response.get_json()) == 1


def test_a_page_size_above_100_is_422(client):
    assert_field_error(client.get("/users?page_size=101"), "page_size", location="query")


def test_page_0_is_422(client):
    assert_field_error(client.get("/users?page=0"), "page", location="query")


def test_search_finds_a_last_name_case_insensitively_by_substring(client):
    ada = create_user(client, first_name="Ada", last_name="Lovelace")
    create_user(client, first_name="Alan", last_name="Turing")

    response = client.get("/users?q=LOVEL")

    assert response.status_code == 200
    assert [user["id"] for user in response.get_json()] == [ada["id"]]
    assert pagination(response)["total"] == 1


def test_search_finds_a_first_name(client):
    create_user(client, first_name="Ada", last_name="Lovelace")
    alan = create_user(client, first_name="Alan", last_name="Turing")

    response = client.get("/users?q=aLa")

    assert [user["id"] for user in response.get_json()] == [alan["id"]]


def test_search_finds_an_email(client):
    create_user(client)
    found = create_user(client, email="countess.of.lovelace@example.org")

    response = client.get("/users?q=OF.LOVE")

    assert [user["id"] for user in response.get_json()] == [found["id"]]


def test_search_with_no_match_returns_an_empty_list(client):
    create_user(client)

    response = client.get("/users?q=zzzz")

    assert response.status_code == 200
    assert response.get_json() == []
    assert pagination(response)["total"] == 0


def test_a_search_shorter_than_3_characters_is_422_naming_q(client):
    assert_field_error(client.get("/users?q=ad"), "q", location="query")


def test_a_search_of_3_characters_is_accepted(client):
    ada = create_user(client, first_name="Ada", last_name="Lovelace")

    response = client.get("/users?q=ada")

    assert response.status_code == 200
    assert [user["id"] for user in response.get_json()] == [ada["id"]]


def test_percent_and_underscore_in_a_search_are_literal(client):
    real = create_user(client, first_name="100%_Real", last_name="Person")
    create_user(client, first_name="1000", last_name="Robert")

    response = client.get("/users", query_string={"q": "0%_r"})

    assert response.status_code == 200
    assert [user["id"] for user in response.get_json()] == [real["id"]]


def test_an_underscore_in_a_search_does_not_match_any_character(client):
    create_user(client, first_name="Adam", last_name="Smith", email="adam@example.com")

    response = client.get("/users", query_string={"q": "ad_m"})

    assert response.status_code == 200
    assert response.get_json() == []


def test_a_backslash_in_a_search_is_literal(client):
    slash = create_user(client, first_name="Back\\slash", last_name="Person")
    create_user(client, first_name="Backslash", last_name="Person")

    response = client.get("/users", query_string={"q": "k\\s"})

    assert [user["id"] for user in response.get_json()] == [slash["id"]]


def test_a_search_with_a_nul_character_is_422_naming_q(app, client):
    app.config["PROPAGATE_EXCEPTIONS"] = False
    create_user(client)

    response = client.get("/users", query_string={"q": "ab\x00c"})

    assert_field_error(response, "q", location="query")


def test_the_timezone_filter_lists_only_users_in_that_zone(client):
    kathmandu = create_user(client, timezone="Asia/Kathmandu")
    create_user(client, timezone="Europe/London")

    response = client.get("/users?timezone=Asia/Kathmandu")

    assert response.status_code == 200
    assert [user["id"] for user in response.get_json()] == [kathmandu["id"]]
    assert pagination(response)["total"] == 1


def test_an_unknown_timezone_filter_is_422(client):
    assert_field_error(client.get("/users?timezone=Mars/Olympus"), "timezone", location="query")


def test_deleted_users_never_appear_in_the_list(client):
    kept = create_user(client, first_name="Ada", last_name="Lovelace", timezone="Asia/Kathmandu")
    gone = create_user(client, first_name="Ada", last_name="Lovelace", timezone="Asia/Kathmandu")
    delete_user(client, gone["id"])

    for query in ("", "?q=lovelace", "?timezone=Asia/Kathmandu"):
        response = client.get(f"/users{query}")
        assert [user["id"] for user in response.get_json()] == [kept["id"]]
        assert pagination(response)["total"] == 1


def test_search_matches_a_full_name_across_first_and_last_name(client):
    create_user(client, first_name="Bob", last_name="Smith")
    create_user(client, first_name="Bobby", last_name="Jones")

    found = client.get("/users?q=bob smi").get_json()

    assert [(u["first_name"], u["last_name"]) for u in found] == [("Bob", "Smith")]
