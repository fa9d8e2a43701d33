"""Every status change the SQL performs is one TRANSITIONS allows, and every transition
TRANSITIONS lists is performed by some statement.

The statements are read as the repositories hold them (module-level SQL, rendered to
text): each UPDATE of message_logs that assigns `status` (an ON CONFLICT DO UPDATE
included) is split into the statuses it sets and the statuses its conditions expect.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator

import pytest
from psycopg import sql

import repositories
from domain import statuses
from domain.statuses import Status
from repositories import occurrences

# `status = <value>` as an assignment: not qualified by a table (m.status = … is a test).
_ASSIGNMENT = re.compile(r"(?<![\w.])status\s*=\s*(CASE\b.*?\bEND|'\w+'|%\(\w+\)s)", re.S)
_LITERAL = re.compile(r"'([A-Z]+)'")
# A test of a status: `status = 'X'`, `status IN ('X', 'Y')`, qualified or not.
_CONDITION = re.compile(r"(?:\w+\.)?status\s*(?:=\s*'[A-Z]+'|IN\s*\([^)]*\))")


def _texts(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, sql.Composable):
        yield value.as_string()
    elif isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)


def _statements() -> dict[str, str]:
    """Every module-level statement of the repositories that assigns a status."""
    found = {}
    for module_info in pkgutil.walk_packages(repositories.__path__, "repositories."):
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            for number, text in enumerate(_texts(value)):
                is_update = re.search(r"UPDATE message_logs|DO UPDATE", text)
                template = re.search(r"{\w+}", text)  # rendered into other statements
                if is_update and not template and _ASSIGNMENT.search(_set_clause(text)):
                    found[f"{module_info.name}.{name}[{number}]"] = text
    # Planning's statement is rendered per shape of its bounds (each shape alike).
    found["repositories.messages._plan_statement"] = occurrences._plan_statement(
        "one", False, False
    )
    return found


def _set_clause(text: str) -> str:
    """The text from the (last) SET to the end: where the assignments are."""
    return text[text.rindex("SET") :] if "SET" in text else ""


def _moves(text: str) -> tuple[set[Status], set[Status]]:
    """(statuses the statement expects, statuses it sets)."""
    if "DO UPDATE" in text:  # an upsert: only its update's own condition is about the row
        text = text[text.index("DO UPDATE") :]
    start = text.rindex("SET")
    assignment = _ASSIGNMENT.search(text, start)
    targets = {Status(name) for name in _LITERAL.findall(assignment[1])}
    if assignment[1].startswith("%("):
        raise AssertionError(f"a status set from a parameter cannot be checked: {text}")
    without_assignment = text[: assignment.start()] + text[assignment.end() :]
    sources = {
        Status(name)
        for condition in _CONDITION.findall(without_assignment)
        for name in _LITERAL.findall(condition)
    }
    return sources, targets


STATEMENTS = _statements()


def test_the_repositories_hold_status_changing_statements():
    # Claim, expire, reclaim, take, record (sent, retry, failed, expired), cancel (two),
    # the operator's retry and planning's revival of a cancelled row.
    assert len(STATEMENTS) >= 12, sorted(STATEMENTS)


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_each_status_change_is_a_transition_of_the_lifecycle(name):
    sources, targets = _moves(STATEMENTS[name])

    assert sources, f"{name} changes a status without naming the one it expects"
    assert targets, f"{name} names no status it sets"
    for source in sources:
        for target in targets:
            assert target in statuses.TRANSITIONS[source], f"{name}: {source} -> {target}"


def test_every_transition_of_the_lifecycle_is_performed_by_a_statement():
    performed = set()
    for text in STATEMENTS.values():
        sources, targets = _moves(text)
        performed |= {(source, target) for source in sources for target in targets}

    declared = {(s, t) for s, following in statuses.TRANSITIONS.items() for t in following}
    assert declared - performed == set()
