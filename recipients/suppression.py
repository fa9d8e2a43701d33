"""The suppression list: addresses never sent to. Joins its caller's transaction.

An address is suppressed by hand (POST /suppressions), when a channel answers that it
has no mailbox (SMTP 5.1.x, the email API's no_such_recipient), and when the provider
reports a hard bounce or a complaint (POST /webhooks/provider). Suppressing cancels the
greetings no worker holds yet; nothing is planned for the address meanwhile, and a
worker that takes one of its greetings cancels it. Removing it plans them again.
"""

from __future__ import annotations

from datetime import datetime, time

import psycopg

from errors import SuppressionNotFound
from planning import for_users as planning
from repositories import message_lifecycle, users
from repositories import suppressions as suppression_list


def suppress(
    conn: psycopg.Connection, email: str, reason: str, source: str, detail: str | None = None
) -> dict:
    """Put `email` on the list (kept with its first reason) and cancel what is pending
    for it; the list's row, `created` saying whether it is new."""
    row = suppression_list.add(conn, email, reason, source, detail)
    message_lifecycle.cancel_for_address(conn, email, f"address suppressed: {row['reason']}")
    return row


def unsuppress(conn: psycopg.Connection, email: str, now: datetime, send_time: time) -> None:
    """Take `email` off the list and plan its user's greetings again."""
    if not suppression_list.remove(conn, email):
        raise SuppressionNotFound(email)
    user_ids = users.live_ids_with_email(conn, email)
    if user_ids:
        planning.plan_users(conn, user_ids, now, send_time)
