"""Every query of the status page can be answered from an index, never a table scan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from repositories import operator_views as views

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
QUERIES = {
    "by day and status": (
        views._BY_DAY_AND_STATUS,
        {"statuses": views.ALL_STATUSES, "start": NOW, "end": NOW + timedelta(days=8)},
    ),
    "last hour": (
        views._OUTCOMES,
        {
            "statuses": views.ALL_STATUSES,
            "since": NOW,
            "now": NOW,
            "window_start": NOW - timedelta(hours=50),
        },
    ),
    "sent by hour": (
        views._SENT_BY_HOUR,
        {"since": NOW, "now": NOW, "window_start": NOW - timedelta(hours=50)},
    ),
    "due by hour": (views._DUE_BY_HOUR, {"now": NOW, "until": NOW + timedelta(hours=48)}),
    "upcoming": (
        f"SELECT m.id FROM message_logs m WHERE {views._UPCOMING_WHERE}",
        {"now": NOW, "until": NOW + timedelta(hours=24), "message_type": None},
    ),
    "failures": (
        f"SELECT id FROM message_logs WHERE {views._FAILURES_WHERE}",
        {"statuses": views.UNSENT_FINAL, "since": NOW - timedelta(days=7)},
    ),
    "stuck": (f"SELECT id FROM message_logs WHERE {views._STUCK_WHERE}", {"now": NOW}),
}


@pytest.mark.parametrize("name", QUERIES)
def test_the_query_is_served_by_an_index(conn, name):
    # A planner told to avoid table scans still makes one when no index fits.
    query, params = QUERIES[name]
    conn.execute("SET LOCAL enable_seqscan = off")

    plan = "\n".join(row["QUERY PLAN"] for row in conn.execute("EXPLAIN " + query, params))

    assert "Seq Scan" not in plan, plan
    assert "Index" in plan
