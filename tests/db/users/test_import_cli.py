"""`flask users import FILE` and `flask users export`, on the real PostgreSQL."""

from __future__ import annotations

import csv
import io
import json

import pytest

from api.resources import resources_of
from app import create_app
from repositories.user_imports import FIELDS
from tests.db.users.test_import import greetings, users
from tests.factories import OMIT, create_user, delete_user

HEADER = "external_id,first_name,last_name,email,timezone,birthday_date,anniversary_date\n"
ADA = "HR-1,Ada,Lovelace,ada@example.com,Europe/London,1990-12-10,\n"
GRACE = "HR-2,Grace,Hopper,grace@example.com,America/New_York,1906-12-09,1930-06-15\n"
ADA_JSON = {
    "external_id": "HR-1",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": "ada@example.com",
    "timezone": "UTC",
    "birthday_date": "1990-12-10",
}
GRACE_JSON = {
    "external_id": "HR-2",
    "first_name": "Grace",
    "last_name": "Hopper",
    "email": "grace@example.com",
    "timezone": "UTC",
    "anniversary_date": "1930-06-15",
}
NDJSON = "".join(json.dumps(item) + "\n" for item in (ADA_JSON, GRACE_JSON))


def import_file(runner, path, *options: str, stdin: bytes | None = None):
    return runner.invoke(args=["users", "import", str(path), *options], input=stdin)


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def answer(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def counts(result) -> tuple:
    body = answer(result)
    return tuple(body[k] for k in ("created", "updated", "unchanged", "deleted", "error_count"))


def export(runner, *options: str):
    result = runner.invoke(args=["users", "export", *options])
    assert result.exit_code == 0, result.output
    return result


# Import


def test_importing_a_csv_file_creates_users_and_plans_their_greetings(runner, db, tmp_path):
    result = import_file(runner, write(tmp_path, "people.csv", HEADER + ADA + GRACE))

    assert answer(result) == {
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "deleted": 0,
        "error_count": 0,
        "errors": [],
        "dry_run": False,
    }
    assert set(users(db)) == {"HR-1", "HR-2"}
    assert sorted((e, t, s) for e, t, s, *_ in greetings(db)) == [
        ("HR-1", "BIRTHDAY", "SCHEDULED"),
        ("HR-2", "ANNIVERSARY", "SCHEDULED"),
        ("HR-2", "BIRTHDAY", "SCHEDULED"),
    ]
    # the progress bar is on stderr, never in the JSON on stdout
    assert "importing" in result.stderr and "importing" not in result.stdout


def test_a_dry_run_counts_and_writes_nothing(runner, db, tmp_path):
    import_file(runner, write(tmp_path, "first.csv", HEADER + ADA))
    before_users, before_greetings = users(db), greetings(db)
    changed = HEADER + ADA.replace("Lovelace", "King") + GRACE

    result = import_file(
        runner, write(tmp_path, "second.csv", changed), "--dry-run", "--delete-missing"
    )

    assert answer(result)["dry_run"] is True
    assert counts(result) == (1, 1, 0, 0, 0)
    assert users(db) == before_users
    assert greetings(db) == before_greetings


def test_delete_missing_deletes_who_the_file_leaves_out_and_cancels_their_greetings(
    runner, client, db, tmp_path
):
    kept = create_user(client)  # no external_id: not the system of record's
    import_file(runner, write(tmp_path, "all.csv", HEADER + ADA + GRACE))

    result = import_file(runner, write(tmp_path, "ada.csv", HEADER + ADA), "--delete-missing")

    assert counts(result) == (0, 0, 1, 1, 0)
    assert set(users(db)) == {"HR-1", None}
    assert {s for e, _, s, *_ in greetings(db) if e == "HR-2"} == {"CANCELLED"}
    assert {s for e, _, s, *_ in greetings(db) if e == "HR-1"} == {"SCHEDULED"}
    assert str(users(db)[None]["id"]) == kept["id"]


def test_without_delete_missing_who_the_file_leaves_out_stays(runner, db, tmp_path):
    import_file(runner, write(tmp_path, "all.csv", HEADER + ADA + GRACE))

    result = import_file(runner, write(tmp_path, "ada.csv", HEADER + ADA))

    assert counts(result) == (0, 0, 1, 0, 0)
    assert set(users(db)) == {"HR-1", "HR-2"}


@pytest.mark.parametrize("name", ["people.ndjson", "people.jsonl", "PEOPLE.NDJSON"])
def test_ndjson_is_read_by_the_files_extension(runner, db, tmp_path, name):
    result = import_file(runner, write(tmp_path, name, NDJSON))

    assert counts(result) == (2, 0, 0, 0, 0)
    assert users(db)["HR-2"]["anniversary_date"].isoformat() == "1930-06-15"


def test_format_overrides_the_extension(runner, db, tmp_path):
    as_ndjson = import_file(runner, write(tmp_path, "people.txt", NDJSON), "--format", "ndjson")
    as_csv = import_file(runner, write(tmp_path, "people.json", NDJSON), "--format", "csv")

    assert counts(as_ndjson) == (2, 0, 0, 0, 0)
    assert as_csv.exit_code == 1  # its first line is no header of known columns


def test_a_file_of_another_extension_is_read_as_csv(runner, db, tmp_path):
    result = import_file(runner, write(tmp_path, "people.txt", HEADER + ADA))

    assert counts(result) == (1, 0, 0, 0, 0)


def test_stdin_is_read_for_a_dash(runner, db):
    as_csv = import_file(runner, "-", stdin=(HEADER + ADA).encode())
    as_ndjson = import_file(runner, "-", "--format", "ndjson", stdin=NDJSON.encode())

    assert counts(as_csv) == (1, 0, 0, 0, 0)
    assert counts(as_ndjson) == (1, 1, 0, 0, 0)  # HR-1 in UTC now; HR-2 is new
    assert users(db)["HR-1"]["timezone"] == "UTC"


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("nick.csv", "external_id,nick\nHR-3,x\n", "row 0, nick: unknown column"),
        ("twice.csv", HEADER + GRACE + GRACE.replace("grace@", "g2@"), "row 2, external_id:"),
        ("short.csv", HEADER + GRACE + "HR-3,Cut\n", "row 2, row:"),
        ("nick.ndjson", '{"external_id": "HR-3", "nick": "x"}\n', "row 1, nick: unknown field"),
        ("cut.ndjson", json.dumps(GRACE_JSON) + '\n{"external_id": "HR', "row 2, row:"),
    ],
)
def test_a_file_that_is_not_an_import_exits_1_naming_row_and_field_and_writes_nothing(
    runner, db, tmp_path, name, text, where
):
    import_file(runner, write(tmp_path, "first.csv", HEADER + ADA))
    before_users, before_greetings = users(db), greetings(db)

    result = import_file(runner, write(tmp_path, name, text), "--delete-missing")

    assert result.exit_code == 1
    assert where in result.stderr and "nothing was imported" in result.stderr
    assert result.stdout == ""
    assert users(db) == before_users
    assert greetings(db) == before_greetings


def import_with(db_url: str, tmp_path, **settings: str):
    """An import of 1,000 new users with `settings`, by an app of its own."""
    app = create_app({"DATABASE_URL": db_url, **settings})
    rows = "".join(f"HR-{n},Ada,Lovelace,ada{n}@example.com,UTC,1990-12-10,\n" for n in range(1000))
    try:
        return import_file(app.test_cli_runner(), write(tmp_path, "many.csv", HEADER + rows))
    finally:
        resources_of(app).pool.close()


def test_a_statement_past_the_import_timeout_exits_1_naming_the_setting_and_writes_nothing(
    db_url, db, tmp_path
):
    result = import_with(db_url, tmp_path, IMPORT_TIMEOUT="0.001")

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback
    assert "IMPORT_TIMEOUT (0:00:00.001000" in result.stderr
    assert users(db) == {}


def test_an_imports_statements_may_outlast_the_statement_timeout_of_other_work(
    db_url, db, tmp_path
):
    # 50 ms is far less than staging, checking and planning 1,000 users take
    result = import_with(db_url, tmp_path, DB_STATEMENT_TIMEOUT_MS="50")

    assert result.exit_code == 0, result.stderr
    assert len(users(db)) == 1000


def test_a_missing_file_is_a_usage_error(runner, db, tmp_path):
    result = import_file(runner, tmp_path / "nowhere.csv")

    assert result.exit_code == 2
    assert "nowhere.csv" in result.stderr
    assert users(db) == {}


def test_invalid_rows_are_reported_and_the_valid_ones_applied(runner, db, tmp_path):
    bad = (
        "HR-3,Bad,Zone,zone@example.com,Mars/Base,1990-01-01,\n"
        "HR-4,Bad,Date,date@example.com,UTC,1990-02-30,\n"
    )

    result = import_file(runner, write(tmp_path, "people.csv", HEADER + ADA + bad))

    body = answer(result)
    assert counts(result) == (1, 0, 0, 0, 2)
    assert [(e["row"], e["field"]) for e in body["errors"]] == [
        (2, "timezone"),
        (3, "birthday_date"),
    ]
    assert "2 row(s) refused; see errors" in result.stderr
    assert set(users(db)) == {"HR-1"}


def test_a_clean_import_says_nothing_of_refused_rows(runner, db, tmp_path):
    result = import_file(runner, write(tmp_path, "people.csv", HEADER + ADA))

    assert "refused" not in result.stderr


# Export


def exported_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def people(runner, client, tmp_path) -> dict:
    """Users of every shape: imported, created over the API (no external_id, no
    birthday, a locale), and one deleted."""
    import_file(runner, write(tmp_path, "ada.csv", HEADER + ADA))  # one created_at each
    import_file(runner, write(tmp_path, "grace.csv", HEADER + GRACE))
    plain = create_user(client, birthday_date=OMIT, locale="pt-BR")
    gone = create_user(client, first_name="Gone")
    delete_user(client, gone["id"])
    return {"plain": plain, "gone": gone}


def test_the_export_is_a_csv_of_the_live_users_with_the_import_fields_as_header(
    runner, client, db, tmp_path
):
    made = people(runner, client, tmp_path)

    result = export(runner)

    assert result.stdout.splitlines()[0] == ",".join(FIELDS)
    rows = exported_rows(result.stdout)
    assert [r["email"] for r in rows] == [
        "ada@example.com",
        "grace@example.com",
        made["plain"]["email"],
    ]  # in order of creation; the deleted user is not there
    assert rows[0]["anniversary_date"] == "" and rows[0]["birthday_date"] == "1990-12-10"
    assert rows[2]["external_id"] == "" and rows[2]["birthday_date"] == ""
    assert rows[2]["locale"] == "pt-BR" and rows[2]["location_city"] == "London"
    assert "exported 3 user(s)" in result.stderr


def test_an_export_imports_back_unchanged(runner, client, db, tmp_path):
    people(runner, client, tmp_path)
    path = tmp_path / "export.csv"
    export(runner, "--output", str(path))
    before_users, before_greetings = users(db), greetings(db)

    result = import_file(runner, path, "--delete-missing")

    assert counts(result) == (0, 0, 3, 0, 0)
    assert {k: v["updated_at"] for k, v in users(db).items()} == {
        k: v["updated_at"] for k, v in before_users.items()
    }
    assert users(db) == before_users
    assert greetings(db) == before_greetings


def test_output_writes_the_file_and_nothing_on_stdout(runner, client, db, tmp_path):
    people(runner, client, tmp_path)
    path = tmp_path / "export.csv"
    path.write_text("an older export\n")

    to_file = export(runner, "--output", str(path))
    to_stdout = export(runner)

    assert path.read_text() == to_stdout.stdout
    assert to_file.stdout == ""
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_output_that_cannot_be_written_exits_1(runner, db, tmp_path):
    result = runner.invoke(args=["users", "export", "--output", str(tmp_path / "no" / "x.csv")])

    assert result.exit_code == 1
    assert "cannot write" in result.stderr


def test_an_export_of_no_users_is_the_header_alone(runner, db):
    result = export(runner)

    assert result.stdout == ",".join(FIELDS) + "\n"
