"""Reading a CSV import body into FIELDS-ordered rows of text (imports/rows.py)."""

from __future__ import annotations

import pytest

from imports.rows import MAX_FIELD_LENGTH, BodyProblem, csv_rows
from repositories.user_imports import FIELDS


def rows(text: str, max_rows: int = 100) -> list[dict]:
    body = text.encode()
    chunks = [body[i : i + 7] for i in range(0, len(body), 7)]  # lines cut anywhere
    return [dict(zip(FIELDS, row, strict=True)) for row in csv_rows(chunks, max_rows)]


def test_columns_in_any_order_land_in_their_fields_and_absent_ones_are_none():
    [row] = rows("timezone,email,first_name\nUTC,ada@example.com,Ada\n")

    assert row["first_name"] == "Ada"
    assert row["email"] == "ada@example.com"
    assert row["timezone"] == "UTC"
    assert {k for k, v in row.items() if v is None} == set(FIELDS) - {
        "first_name",
        "email",
        "timezone",
    }


def test_an_empty_value_is_none_and_quoted_text_is_kept_whole():
    [row] = rows('first_name,last_name,location_city\nAda,,"Paris, ""France"""\n')

    assert row["last_name"] is None
    assert row["location_city"] == 'Paris, "France"'


def test_a_value_over_the_field_limit_names_its_row_and_field():
    long = "x" * (MAX_FIELD_LENGTH + 1)
    with pytest.raises(BodyProblem) as problem:
        rows(f"first_name,last_name\nAda,Lovelace\nGrace,{long}\n")

    assert (problem.value.row, problem.value.field) == (2, "last_name")


def test_a_value_of_exactly_the_limit_is_read():
    [row] = rows(f"first_name\n{'x' * MAX_FIELD_LENGTH}\n")

    assert len(row["first_name"]) == MAX_FIELD_LENGTH


def test_a_nul_character_names_its_row_and_field():
    with pytest.raises(BodyProblem) as problem:
        rows("first_name,email\nAda,ada\x00@example.com\n")

    assert (problem.value.row, problem.value.field) == (1, "email")


def test_a_row_with_another_number_of_values_names_its_row():
    with pytest.raises(BodyProblem) as problem:
        rows("first_name,last_name\nAda,Lovelace\nGrace\n")

    assert (problem.value.row, problem.value.field) == (2, "row")


def test_more_rows_than_allowed_names_the_first_row_over():
    with pytest.raises(BodyProblem) as problem:
        rows("first_name\nA\nB\nC\n", max_rows=2)

    assert (problem.value.row, problem.value.field) == (3, "body")
