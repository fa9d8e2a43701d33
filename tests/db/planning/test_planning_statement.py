"""The one-user planning statement runs from a generic plan without changing how the
rest of the caller's transaction is planned."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from repositories import occurrences, users
from tests.factories import messages_of


def _user(conn, email: str) -> dict:
    fields = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": email,
        "timezone": "Europe/London",
        "birthday_date": date(1990, 12, 10),
        "anniversary_date": date(2015, 6, 20),
    }
    return users.insert(conn, fields)


def test_planning_one_user_again_and_again_plans_the_same_rows(conn):
    user = _user(conn, "generic-plan@example.com")
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)

    planned = []
    for _ in range(3):
        conn.execute("DELETE FROM message_logs WHERE user_id = %s", (user["id"],))
        planned.append(occurrences.plan_next_occurrences(conn, now, time(9), user_ids=[user["id"]]))
        found = messages_of(conn, user["id"])
        assert {row["occasion_date"] for row in found} == {date(2026, 12, 10), date(2027, 6, 20)}

    assert planned == [2, 2, 2]


def test_the_callers_plan_cache_mode_is_left_as_it_was(conn):
    user = _user(conn, "plan-mode@example.com")
    conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)

    occurrences.plan_next_occurrences(conn, now, time(9), user_ids=[user["id"]])

    assert conn.execute("SHOW plan_cache_mode").fetchone()["plan_cache_mode"] == (
        "force_custom_plan"
    )


def _path_to(node: dict, wanted) -> list[dict] | None:
    """The plan nodes from `node` down to the first one `wanted` accepts."""
    if wanted(node):
        return [node]
    for child in node.get("Plans", []):
        below = _path_to(child, wanted)
        if below is not None:
            return [node, *below]
    return None


def test_planning_chooses_every_row_before_inserting_the_first(conn):
    # A sort between the chosen rows and the insert reads them all first: without it,
    # the finished-row check of later users scans the rows the statement has just
    # inserted (quadratic on a first planning; see repositories/occurrences.py).
    query = occurrences._plan_statement("all", True, True)
    params = {
        "now": datetime(2026, 11, 26, 12, tzinfo=UTC),
        "send_time": time(9),
        "user_ids": None,
        "user_id": None,
        "id_after": "00000000-0000-0000-0000-000000000000",
        "id_upto": "ffffffff-ffff-ffff-ffff-ffffffffffff",
    }
    plan = conn.execute("EXPLAIN (FORMAT JSON) " + query, params).fetchone()
    root = next(iter(plan.values()))[0]["Plan"]

    path = _path_to(root, lambda node: node.get("CTE Name") == "chosen")

    assert root["Node Type"] == "ModifyTable"
    assert path is not None
    assert "Sort" in [node["Node Type"] for node in path[1:-1]]
