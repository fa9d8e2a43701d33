"""/messages and /users/<id>/messages: what was planned and sent, and the retry action."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import psycopg
from flask.views import MethodView

from api import paging
from api.paging import Blueprint
from api.resources import current_pool
from api.schemas import MessageListArgsSchema, MessageSchema, UserMessageListArgsSchema
from db.transactions import transaction
from delivery import messages as messages_service

blp = Blueprint(
    "messages",
    __name__,
    description="Greetings: planned, sent, failed; and the operator's retry.",
)
MAX_PAGE_SIZE = 100


@blp.route("/messages")
class Messages(MethodView):
    @blp.arguments(MessageListArgsSchema, location="query")
    @blp.response(200, MessageSchema(many=True))
    @blp.alt_response(400, response=paging.BAD_CURSOR)
    @blp.paginate(max_page_size=MAX_PAGE_SIZE)
    def get(self, args, pagination_parameters):
        """Messages by status, type and occasion date range, newest occasion first.

        Walk every page by following `Link: rel="next"` (or passing X-Next-Cursor as
        `after`) until it is absent; numbered pages work too (X-Pagination)."""
        filters = {
            "status": args.get("status"),
            "message_type": args.get("type"),
            "date_from": args.get("date_from"),
            "date_to": args.get("date_to"),
        }
        with transaction(current_pool()) as conn:
            return _page_of_messages(conn, filters, args.get("after"), pagination_parameters)


def _page_of_messages(
    conn: psycopg.Connection, filters: dict, after: tuple | None, pagination_parameters
) -> tuple[list[dict], dict[str, str]]:
    return paging.answer(
        pagination_parameters,
        after,
        fetch=lambda limit, offset, after: messages_service.list_messages(
            conn, filters, limit=limit, offset=offset, after=after
        ),
        count=lambda: messages_service.count_messages(conn, filters, paging.EXACT_COUNT_UP_TO),
        sort_key=lambda message: (message["occasion_date"], message["id"]),
    )


@blp.route("/messages/<int:message_id>")
class MessageById(MethodView):
    @blp.response(200, MessageSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, message_id: int):
        """One message."""
        with transaction(current_pool()) as conn:
            return messages_service.get_message(conn, message_id)


@blp.route("/messages/<int:message_id>/retry")
class MessageRetry(MethodView):
    @blp.response(200, MessageSchema)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, message_id: int):
        """Send a FAILED or EXPIRED message again, now; other states are 409."""
        with transaction(current_pool()) as conn:
            return messages_service.retry_message(conn, message_id, datetime.now(UTC))


@blp.route("/users/<uuid:user_id>/messages")
class UserMessages(MethodView):
    @blp.arguments(UserMessageListArgsSchema, location="query")
    @blp.response(200, MessageSchema(many=True))
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(400, response=paging.BAD_CURSOR)
    @blp.paginate(max_page_size=MAX_PAGE_SIZE)
    def get(self, args, pagination_parameters, user_id: UUID):
        """A live user's messages, newest occasion first (paged like /messages)."""
        with transaction(current_pool()) as conn:
            messages_service.check_user_is_live(conn, user_id)
            filters = {"user_id": user_id}
            return _page_of_messages(conn, filters, args.get("after"), pagination_parameters)
