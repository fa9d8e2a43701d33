"""The greeting_templates table: stored wording per occasion (message_type) and locale."""

from __future__ import annotations

import psycopg

from db.queries import execute, fetch_all, fetch_one, fetch_optional

_LIST = """
SELECT message_type, locale, subject, body_text, body_html, created_at, updated_at
FROM greeting_templates
ORDER BY message_type, locale
"""
_GET = """
SELECT message_type, locale, subject, body_text, body_html, created_at, updated_at
FROM greeting_templates
WHERE message_type = %(type)s AND locale = %(locale)s
"""


def list_templates(conn: psycopg.Connection) -> list[dict]:
    """Every stored template, by occasion then locale."""
    return fetch_all(conn, _LIST)


def get_template(conn: psycopg.Connection, message_type: str, locale: str) -> dict | None:
    """The stored template of `message_type` in exactly `locale`, if any."""
    return fetch_optional(conn, _GET, {"type": message_type, "locale": locale})


_PUT = """
INSERT INTO greeting_templates (message_type, locale, subject, body_text, body_html)
VALUES (%(type)s, %(locale)s, %(subject)s, %(text)s, %(html)s)
ON CONFLICT (message_type, locale) DO UPDATE
SET subject = EXCLUDED.subject, body_text = EXCLUDED.body_text,
    body_html = EXCLUDED.body_html, updated_at = now()
RETURNING message_type, locale, subject, body_text, body_html, created_at, updated_at,
          (xmax = 0) AS created
"""


def put_template(
    conn: psycopg.Connection,
    message_type: str,
    locale: str,
    subject: str,
    text: str,
    html: str | None,
) -> dict:
    """Store the template (created or replaced); the row, with `created` saying which."""
    params = {"type": message_type, "locale": locale, "subject": subject, "text": text}
    return fetch_one(conn, _PUT, {**params, "html": html})


def delete_template(conn: psycopg.Connection, message_type: str, locale: str) -> bool:
    """Remove the stored template; False if there was none."""
    deleted = execute(
        conn,
        "DELETE FROM greeting_templates WHERE message_type = %(type)s AND locale = %(locale)s",
        {"type": message_type, "locale": locale},
    )
    return deleted > 0
