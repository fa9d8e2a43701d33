"""Domain errors, raised by repositories and services and mapped to HTTP in api/errors.py."""

from __future__ import annotations


class DomainError(Exception):
    """Base class: something the caller asked for cannot be done as asked."""

    def __init__(self, message: str, field: str | None = None, location: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.location = location  # where the field was: "path", "json" (default), …

    @property
    def field_errors(self) -> dict[str, list[str]]:
        """Messages by field name, in the shape of a validation error."""
        return {self.field: [self.message]} if self.field else {}


class NotFound(DomainError):
    """The resource does not exist (or was deleted)."""


class UserNotFound(NotFound):
    def __init__(self, user_id: object) -> None:
        super().__init__(f"user {user_id} not found")


class Conflict(DomainError):
    """The request clashes with the current state."""


class EmailTaken(Conflict):
    def __init__(self, email: str) -> None:
        super().__init__("a user with this email already exists", field="email")
        self.email = email


class ExternalIdTaken(Conflict):
    def __init__(self) -> None:
        super().__init__("a live user already has this external_id", field="external_id")


class InvalidField(DomainError):
    """A field's value is refused after parsing (e.g. by a database constraint)."""


class InvalidFields(InvalidField):
    """Several fields refused at once, e.g. after merging a partial update."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("invalid fields: " + ", ".join(sorted(errors)))
        self.errors = errors

    @property
    def field_errors(self) -> dict[str, list[str]]:
        return self.errors


class IdempotencyKeyInProgress(Conflict):
    def __init__(self) -> None:
        super().__init__("a request with this Idempotency-Key is still being processed")


class IdempotencyKeyTakenOver(Conflict):
    """This request outlived its claim; a retry with the same key now owns it."""

    def __init__(self) -> None:
        super().__init__(
            "this request took too long and a retry with the same Idempotency-Key took it "
            "over; nothing was saved, ask again for the retry's response",
        )


class IdempotencyKeyReused(InvalidField):
    def __init__(self) -> None:
        super().__init__(
            "this Idempotency-Key was used with a different request body",
            field="Idempotency-Key",
        )


class MessageNotFound(NotFound):
    def __init__(self, message_id: object) -> None:
        super().__init__(f"message {message_id} not found")


class MessageNotRetryable(Conflict):
    def __init__(self, message_id: object, status: str) -> None:
        super().__init__(
            f"message {message_id} is {status}: only FAILED or EXPIRED messages can be retried"
        )


class OccasionNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"no occasion is named {name!r}", field="occasion", location="path")


class TemplateNotFound(NotFound):
    def __init__(self, occasion: str, locale: str) -> None:
        super().__init__(
            f"no {occasion} template is stored for locale {locale!r}",
            field="locale",
            location="path",
        )


class TemplateRefused(InvalidField):
    """A template that could not be sent as written: the field and the line."""

    def __init__(self, field: str, problem: str, line: int | None) -> None:
        where = f"line {line}: " if line else ""
        super().__init__(f"{field}: {where}{problem}", field=field)
        self.line = line
        self.problem = problem

    @property
    def field_errors(self) -> dict[str, list[str]]:
        where = f"line {self.line}: " if self.line else ""
        return {self.field or "": [f"{where}{self.problem}"]}


class SuppressionNotFound(NotFound):
    def __init__(self, email: str) -> None:
        super().__init__(f"{email} is not suppressed", field="email", location="path")
