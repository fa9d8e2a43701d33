"""What a cursor walk of /users guarantees while users are created, edited and deleted.

The guarantee, exactly: no user is returned twice; every user that existed when the
walk began and is still live when the walk reaches its place is returned exactly
once; a user created during the walk may be missed. The walk is keyed on
(created_at, id) and `created_at` is the creating transaction's start, so a user
committed after a cursor was handed out can sort before it: the first test shows
that happening, the others hold the guarantee under concurrent writes.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from datetime import date

import psycopg
import pytest
from psycopg.rows import dict_row

from repositories import users as users_repository
from tests.factories import make_user

NEXT_LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')


@pytest.fixture
def db(db_url):
    with psycopg.connect(
        db_url, autocommit=True, row_factory=dict_row, options="-c TimeZone=UTC"
    ) as conn:
        yield conn


def ids(rows: list[dict]) -> list[str]:
    return [str(row["id"]) for row in rows]


class Walk:
    """A walk of /users by its next links, one page at a time."""

    def __init__(self, client, page_size: int) -> None:
        self.client = client
        self.url: str | None = f"/users?page_size={page_size}"
        self.seen: list[str] = []
        self.cursors: list[str] = []

    def next_page(self) -> list[str]:
        response = self.client.get(self.url)
        assert response.status_code == 200, response.get_json()
        page = ids(response.get_json())
        self.seen.extend(page)
        link = response.headers.get("Link")
        self.url = NEXT_LINK.match(link).group("url") if link else None
        if link:
            self.cursors.append(response.headers["X-Next-Cursor"])
        return page

    @property
    def done(self) -> bool:
        return self.url is None

    def to_the_end(self, limit: int = 1_000) -> list[str]:
        for _ in range(limit):
            if self.done:
                return self.seen
            self.next_page()
        raise AssertionError(f"more than {limit} pages")


def test_a_user_committed_after_a_cursor_can_sort_before_it_and_is_missed(client, db_url, db):
    # Given a transaction that starts (fixing its now(), the new user's created_at)...
    late = psycopg.connect(db_url, row_factory=dict_row, options="-c TimeZone=UTC")
    try:
        started = late.execute("SELECT now() AS started").fetchone()["started"]
        # ...then two users committed at once, and a cursor handed out after the first,
        first, second = make_user(db), make_user(db)
        walk = Walk(client, page_size=1)
        assert walk.next_page() == [str(first["id"])]
        # When the early transaction creates its user and commits only now,
        missed = users_repository.insert(
            late,
            {
                "first_name": "Late",
                "last_name": "Commit",
                "email": "late-commit@example.com",
                "timezone": "UTC",
                "birthday_date": date(1990, 1, 1),
            },
        )
        late.commit()
    finally:
        late.close()

    # Then its created_at lies before the cursor's row, and the walk never meets it,
    assert missed["created_at"] == started < first["created_at"]
    assert walk.to_the_end() == [str(first["id"]), str(second["id"])]
    # though it is live and a walk begun afterwards returns it first.
    assert Walk(client, page_size=1).to_the_end()[0] == str(missed["id"])


def test_a_walk_with_users_created_edited_and_deleted_between_pages_keeps_its_guarantee(client, db):
    before = [make_user(db) for _ in range(15)]
    walk = Walk(client, page_size=4)
    deleted_ahead: set[str] = set()
    deleted_behind: set[str] = set()
    created: set[str] = set()

    while not walk.done:
        walk.next_page()
        ahead = [str(u["id"]) for u in before if str(u["id"]) not in set(walk.seen)]
        ahead = [user_id for user_id in ahead if user_id not in deleted_ahead]
        behind = [u for u in walk.seen if u not in created and u not in deleted_behind]
        if ahead:  # a user the walk has not reached goes away
            assert client.delete(f"/users/{ahead[-1]}").status_code == 204
            deleted_ahead.add(ahead[-1])
        if behind:  # the last one it returned goes away too, and an earlier one is edited
            assert client.delete(f"/users/{behind[-1]}").status_code == 204
            deleted_behind.add(behind[-1])
        if behind[:-1]:
            edit = client.patch(f"/users/{behind[0]}", json={"timezone": "Asia/Kathmandu"})
            assert edit.status_code == 200
        if ahead[:-1]:  # an edit ahead moves nothing either
            edit = client.patch(f"/users/{ahead[0]}", json={"last_name": "Edited"})
            assert edit.status_code == 200
        created.update(str(make_user(db)["id"]) for _ in range(2))

    returned = Counter(walk.seen)
    assert [user_id for user_id, times in returned.items() if times > 1] == []
    expected = {str(u["id"]) for u in before} - deleted_ahead
    assert expected <= set(returned)
    assert not deleted_ahead & set(returned)
    assert deleted_ahead and deleted_behind  # the walk did meet deletes on both sides
    assert set(returned) <= expected | created


@pytest.mark.timeout(120)
def test_a_walk_under_concurrent_creates_and_deletes_repeats_none_and_misses_no_older_user(
    client, db_url, db
):
    before = [str(make_user(db)["id"]) for _ in range(90)]
    # Users the writer may delete: every third one that existed before the walk.
    deletable = before[::3]
    stop = threading.Event()
    deleted: list[str] = []
    created: list[str] = []
    failures: list[BaseException] = []

    def write() -> None:
        """Create users in transactions held open across the walk's pages (so some sort
        before cursors already handed out) and delete some older users, until told."""
        try:
            with psycopg.connect(db_url, row_factory=dict_row) as conn:
                n = 0
                while not stop.is_set():
                    created.append(str(make_user(conn)["id"]))
                    stop.wait(0.005)  # the transaction stays open while pages are read
                    if n < len(deletable):
                        users_repository.soft_delete(conn, deletable[n])
                        deleted.append(deletable[n])
                    conn.commit()
                    n += 1
        except BaseException as error:  # surfaced by the assertion below
            failures.append(error)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        walks = [Walk(client, page_size=4).to_the_end() for _ in range(3)]
    finally:
        stop.set()
        writer.join(timeout=30)

    assert not writer.is_alive() and failures == []
    assert len(created) >= 3  # the writer did write during the walks
    never_deleted = set(before) - set(deleted)
    for seen in walks:
        assert [user_id for user_id, times in Counter(seen).items() if times > 1] == []
        assert never_deleted <= set(seen)
        assert set(seen) <= set(before) | set(created)
