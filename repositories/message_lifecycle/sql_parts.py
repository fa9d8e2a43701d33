"""SQL pieces the lifecycle's statements share: the named status sets, the columns a
taken greeting comes back with, the "still on its date" test, the bound on a stored
response body."""

from __future__ import annotations

from psycopg import sql

from domain import statuses
from domain.occasions import OCCASIONS
from domain.statuses import Status
from repositories import occasion_sql

RESPONSE_BODY_LIMIT = 2000


def status_list(members: tuple[Status, ...]) -> sql.Composable:
    return sql.SQL("({})").format(sql.SQL(", ").join(sql.Literal(s.value) for s in members))


SETS = {
    name: status_list(members)
    for name, members in {
        "pending": statuses.PENDING,
        "waiting": statuses.WAITING,
        "in_flight": statuses.IN_FLIGHT,
        "cancellable": statuses.CANCELLABLE,
        "operator_retryable": statuses.OPERATOR_RETRYABLE,
    }.items()
}
RETURNED = sql.SQL(
    "m.id, m.user_id, m.status, m.message_type, m.occasion_date, m.message_content,"
    " m.idempotency_key, m.retry_count, m.scheduled_send_time, m.lateness_from, m.locked_until"
)


def statement(text: str, **fragments: sql.Composable) -> sql.Composed:
    """SQL with the named status sets ({waiting}, {in_flight}, …) and `fragments` filled in."""
    return sql.SQL(text).format(**SETS, **fragments)


def response_body(body: str | None) -> str | None:
    return None if body is None else body[:RESPONSE_BODY_LIMIT]


# Whether greeting m (joined to its user u) still falls on its date: the user still has
# its occasion, celebrated on m.occasion_date (repositories/occasion_sql.py).
STILL_ON_ITS_DATE = occasion_sql.still_on_its_date(OCCASIONS)
# The user's original date of greeting m's occasion (u the user).
ORIGINAL_DATE = occasion_sql.original_date(OCCASIONS)
