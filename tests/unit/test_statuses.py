"""The lifecycle's one home agrees with the schema and holds together: pure checks."""

from __future__ import annotations

import re
from pathlib import Path

from domain import statuses
from domain.statuses import Status

MIGRATION = Path(__file__).resolve().parents[2] / "sql/migrations/0002_message_logs.up.sql"


def test_the_check_constraint_allows_exactly_the_statuses_of_the_lifecycle():
    text = MIGRATION.read_text()
    check = re.search(r"message_logs_status_check CHECK \(status IN \((.*?)\)\)", text, re.S)

    assert check is not None
    assert set(re.findall(r"'(\w+)'", check[1])) == {s.value for s in Status}


def test_pending_and_finished_statuses_split_the_live_ones():
    assert set(statuses.PENDING) & set(statuses.FINISHED) == set()
    assert set(statuses.PENDING) | set(statuses.FINISHED) | {Status.CANCELLED} == set(Status)


def test_a_sent_greeting_never_changes_again():
    assert statuses.TRANSITIONS[Status.SENT] == frozenset()


def test_only_an_operator_revives_a_finished_failure_and_only_to_scheduled():
    for status in statuses.OPERATOR_RETRYABLE:
        assert statuses.TRANSITIONS[status] == frozenset({Status.SCHEDULED})


def test_a_greeting_held_by_a_worker_is_not_cancellable():
    assert Status.SENDING not in statuses.CANCELLABLE
    assert Status.CANCELLED not in statuses.TRANSITIONS[Status.SENDING]
