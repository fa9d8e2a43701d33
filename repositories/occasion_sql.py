"""The SQL the repositories need about occasions, rendered from the registry.

Every piece names each occasion of `domain.occasions.OCCASIONS` (or of the registry
given) explicitly and has no ELSE: a message type no occasion declares gets NULL (no
date, no text), which the statements treat as "not on its date" or refuse, never as
another occasion. The names come from the registry, which checks them (plain upper-case
names, plain column names); they are still written as SQL literals and identifiers.
"""

from __future__ import annotations

import re

from psycopg import sql

from domain.occasions import Occasion, Occasions


def _column(table: str, occasion: Occasion) -> sql.Composable:
    return sql.SQL("{}.{}").format(sql.Identifier(table), sql.Identifier(occasion.date_field))


def _greeted_date(user: str, occasion: Occasion) -> sql.Composable:
    """The user's date of `occasion`, NULL when they unsubscribed from it: greetings are
    planned, kept and sent only for a date this gives."""
    return sql.SQL("CASE WHEN {} = ANY({}.unsubscribed) THEN NULL ELSE {} END").format(
        sql.Literal(occasion.message_type), sql.Identifier(user), _column(user, occasion)
    )


def user_occasions(occasions: Occasions, user: str = "u") -> sql.Composable:
    """A VALUES list of (message_type, original, leap_day), one row per occasion of the
    user `user`, to put after CROSS JOIN LATERAL (aliased `o`)."""
    rows = sql.SQL(", ").join(
        sql.SQL("({}, {}, {})").format(
            sql.Literal(o.message_type), _greeted_date(user, o), sql.Literal(o.leap_day.value)
        )
        for o in occasions
    )
    return sql.SQL("(VALUES {}) AS o (message_type, original, leap_day)").format(rows)


def _case(occasions: Occasions, message_type: str, value) -> sql.Composable:
    branches = sql.SQL(" ").join(
        sql.SQL("WHEN {} THEN {}").format(sql.Literal(o.message_type), value(o)) for o in occasions
    )
    return sql.SQL("CASE {} {} END").format(sql.SQL(message_type), branches)


def original_date(occasions: Occasions, message_type: str = "m.message_type", user: str = "u"):
    """The user's original date for the occasion named by `message_type` (NULL: none, or
    unsubscribed from it)."""
    return _case(occasions, message_type, lambda o: _greeted_date(user, o))


def leap_day(occasions: Occasions, message_type: str = "m.message_type") -> sql.Composable:
    """The Feb 29 rule of the occasion named by `message_type`."""
    return _case(occasions, message_type, lambda o: sql.Literal(o.leap_day.value))


def still_on_its_date(occasions: Occasions, message: str = "m", user: str = "u"):
    """Whether greeting `message` still falls on its date for user `user`: the user has
    its occasion, celebrated on the greeting's occasion_date."""
    return sql.SQL(
        "occasion_in_year({original}, extract(year FROM {message}.occasion_date)::integer,"
        " {leap_day}) IS NOT DISTINCT FROM {message}.occasion_date"
    ).format(
        original=original_date(occasions, f"{message}.message_type", user),
        leap_day=leap_day(occasions, f"{message}.message_type"),
        message=sql.Identifier(message),
    )


def _text_expression(text: str, first_name: str, last_name: str) -> sql.Composable:
    """A default text as a concatenation: its literal parts, and the name columns where
    it says {first_name} and {last_name}.

    A % in the text is doubled: the statements run with parameters, so psycopg reads
    every % of their text, inside literals too, as a placeholder's start.
    """
    columns = {"first_name": sql.SQL(first_name), "last_name": sql.SQL(last_name)}
    parts: list[sql.Composable] = []
    for piece in re.split(r"({first_name}|{last_name})", text):
        if piece in ("{first_name}", "{last_name}"):
            parts.append(columns[piece[1:-1]])
        elif piece:
            parts.append(sql.Literal(piece.replace("%", "%%")))
    return sql.SQL("({})").format(sql.SQL(" || ").join(parts))


def greeting_text(
    occasions: Occasions, message_type: str, first_name: str, last_name: str
) -> sql.Composable:
    """The default text of the occasion named by `message_type` for that name (NULL for
    a type no occasion declares: message_content refuses it)."""
    return _case(
        occasions, message_type, lambda o: _text_expression(o.default_text, first_name, last_name)
    )


def has_an_occasion(occasions: Occasions, user: str = "u") -> sql.Composable:
    """Whether user `user` has at least one occasion's date."""
    return sql.SQL("({})").format(
        sql.SQL(" OR ").join(sql.SQL("{} IS NOT NULL").format(_column(user, o)) for o in occasions)
    )
