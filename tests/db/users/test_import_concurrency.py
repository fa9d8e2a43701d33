"""An import running while the API writes the same users: each write of the API lands
before or after the import's, never lost in between, and greetings follow the users'
final values (one pending greeting per occasion, on the final date).

The API's side is the same service function its handlers call, in a transaction these
tests hold open, so that it commits exactly while the import waits for its rows.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime
from datetime import time as clock_time

import psycopg
from psycopg.rows import dict_row

from tests.db.users.test_import import HEADER, counts, post_csv
from users import directory

NINE = clock_time(9)
WAIT_SECONDS = 20


def user_row(number: int, *, city: str = "", birthday: str = "1990-12-10") -> str:
    return (
        f"HR-{number},Person,Number{number},p{number}@example.com,Europe/London,"
        f"{birthday},,{city}\n"
    )


CITY_HEADER = HEADER.rstrip("\n") + ",location_city\n"


def import_file(numbers, **fields) -> str:
    return CITY_HEADER + "".join(user_row(n, **fields) for n in numbers)


class Background:
    """A request run in a thread of its own; its response once it ends."""

    def __init__(self, call) -> None:
        self.response = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call) -> None:
        try:
            self.response = call()
        except BaseException as error:  # surfaced by result()
            self.error = error

    def result(self):
        self._thread.join(WAIT_SECONDS)
        assert not self._thread.is_alive(), "the import did not finish"
        if self.error:
            raise self.error
        return self.response


def wait_until_import_waits_for_a_lock(db) -> None:
    """Until a statement of the import waits for a row another transaction holds."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        waiting = db.execute(
            "SELECT count(*) AS n FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND query LIKE '%%import_rows%%'"
        ).fetchone()["n"]
        if waiting:
            return
        time.sleep(0.02)
    raise AssertionError("the import never waited for the rows held")


def live_user(db, external_id: str) -> dict:
    return db.execute(
        "SELECT * FROM users WHERE external_id = %s AND deleted_at IS NULL", (external_id,)
    ).fetchone()


def pending_birthdays(db, user_id) -> list[date]:
    rows = db.execute(
        "SELECT occasion_date FROM message_logs WHERE user_id = %s AND message_type = 'BIRTHDAY'"
        " AND status IN ('SCHEDULED', 'RETRYING', 'QUEUED', 'SENDING')",
        (user_id,),
    ).fetchall()
    return [row["occasion_date"] for row in rows]


def holding(db_url: str) -> psycopg.Connection:
    return psycopg.connect(db_url, row_factory=dict_row, options="-c TimeZone=UTC")


def test_a_patch_committed_while_the_import_waits_is_followed_by_a_replan(app, client, db, db_url):
    # Given imported users, and a file that changes only their city
    post_csv(client, import_file(range(1, 6)))
    user = live_user(db, "HR-3")
    before = pending_birthdays(db, user["id"])
    # When a PATCH of one user's birthday holds its row as the import's update starts,
    # and commits while the import waits for it
    with holding(db_url) as api:
        directory.patch_user(
            api, user["id"], {"birthday_date": date(1990, 3, 1)}, datetime.now(UTC), NINE
        )
        running = Background(
            lambda: post_csv(app.test_client(), import_file(range(1, 6), city="Leeds"))
        )
        wait_until_import_waits_for_a_lock(db)
        api.commit()
    response = running.result()

    # Then the import wrote last: the file's birthday and city, every user updated
    assert response.status_code == 200, response.get_json()
    assert counts(response) == (0, 5, 0, 0, 0)
    after = live_user(db, "HR-3")
    assert (after["birthday_date"], after["location_city"]) == (date(1990, 12, 10), "Leeds")
    # And the greeting follows the birthday the user has now, not the PATCH's
    assert pending_birthdays(db, user["id"]) == before


def test_a_user_deleted_while_the_import_waits_stays_deleted_without_greetings(
    app, client, db, db_url
):
    post_csv(client, import_file(range(1, 4)))
    user = live_user(db, "HR-2")

    with holding(db_url) as api:
        directory.delete_user(api, user["id"])
        running = Background(
            lambda: post_csv(app.test_client(), import_file(range(1, 4), city="York"))
        )
        wait_until_import_waits_for_a_lock(db)
        api.commit()
    response = running.result()

    assert response.status_code == 200, response.get_json()
    assert counts(response)[:2] == (0, 2)
    assert live_user(db, "HR-2") is None
    assert pending_birthdays(db, user["id"]) == []


def test_a_user_created_with_a_rows_email_while_the_import_waits_makes_that_row_an_error(
    app, client, db, db_url
):
    # Given an API request creating the user of a file's row, not yet committed
    post_csv(client, import_file(range(1, 3)))
    with holding(db_url) as api:
        created = directory.create_user(
            api,
            {
                "first_name": "Early",
                "last_name": "Bird",
                "email": "p3@example.com",
                "timezone": "Europe/London",
                "birthday_date": date(1985, 5, 5),
            },
            datetime.now(UTC),
            NINE,
        )
        running = Background(lambda: post_csv(app.test_client(), import_file(range(1, 5))))
        wait_until_import_waits_for_a_lock(db)
        api.commit()
    response = running.result()

    # Then the import applied every other row and reports that one
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert counts(response) == (1, 0, 2, 0, 1)
    assert body["errors"] == [
        {"row": 3, "field": "email", "message": "another live user has this email"}
    ]
    assert live_user(db, "HR-4") is not None
    assert db.execute(
        "SELECT first_name FROM users WHERE email = 'p3@example.com' AND deleted_at IS NULL"
    ).fetchall() == [{"first_name": "Early"}]
    assert len(pending_birthdays(db, created["id"])) == 1


def test_api_writes_during_an_import_leave_one_greeting_per_user_on_the_final_date(app, client, db):
    # Given 60 imported users, re-imported with new birthdays while the API changes them
    post_csv(client, import_file(range(1, 61)))
    ids = {n: live_user(db, f"HR-{n}")["id"] for n in range(1, 61)}
    running = Background(
        lambda: post_csv(app.test_client(), import_file(range(1, 61), birthday="1991-01-20"))
    )
    api = app.test_client()
    for n in range(1, 61, 2):
        answer = api.patch(f"/users/{ids[n]}", json={"birthday_date": "1992-07-04"})
        assert answer.status_code == 200, answer.get_json()
    assert running.result().status_code == 200

    # Then each user's one pending birthday greeting falls on the birthday it ended with
    for n, user_id in ids.items():
        birthday = live_user(db, f"HR-{n}")["birthday_date"]
        assert birthday in (date(1991, 1, 20), date(1992, 7, 4))
        [planned] = pending_birthdays(db, user_id)
        assert (planned.month, planned.day) == (birthday.month, birthday.day), n
