"""The statuses of a greeting, which may follow which, and the named sets code asks about.

This is the one home of the lifecycle. The repositories render these sets into their
statements as literals (so partial indexes declared with the same lists stay usable),
the API validates filters against `ALL`, and the CHECK constraint of migration 0002
holds the same names (a test compares them).
"""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    SCHEDULED = "SCHEDULED"
    QUEUED = "QUEUED"
    SENDING = "SENDING"
    SENT = "SENT"
    RETRYING = "RETRYING"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


ALL: tuple[Status, ...] = tuple(Status)

# Waiting for its next attempt time; the dispatcher claims these when due.
WAITING = (Status.SCHEDULED, Status.RETRYING)
# Handed to the queue or a worker, under a lease; recovery takes them back.
IN_FLIGHT = (Status.QUEUED, Status.SENDING)
# Not finished: at most one such row per user and occasion type.
PENDING = WAITING + IN_FLIGHT
# Done for this occasion; the next occurrence is planned.
FINISHED = (Status.SENT, Status.FAILED, Status.EXPIRED)
# A change of the user cancels these; a SENDING row is already at the provider.
CANCELLABLE = (Status.SCHEDULED, Status.QUEUED, Status.RETRYING)
# An operator may make these due again (POST /messages/<id>/retry).
OPERATOR_RETRYABLE = (Status.FAILED, Status.EXPIRED)

# Every transition the service makes. Each is one conditional UPDATE that names the
# status it expects, so two processes never both win.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.SCHEDULED: frozenset({Status.QUEUED, Status.CANCELLED, Status.EXPIRED}),
    Status.RETRYING: frozenset({Status.QUEUED, Status.CANCELLED, Status.EXPIRED}),
    Status.QUEUED: frozenset({Status.SENDING, Status.QUEUED, Status.CANCELLED, Status.EXPIRED}),
    Status.SENDING: frozenset(
        {Status.SENT, Status.RETRYING, Status.FAILED, Status.QUEUED, Status.EXPIRED}
    ),
    Status.CANCELLED: frozenset({Status.SCHEDULED}),
    Status.FAILED: frozenset({Status.SCHEDULED}),
    Status.EXPIRED: frozenset({Status.SCHEDULED}),
    Status.SENT: frozenset(),
}
